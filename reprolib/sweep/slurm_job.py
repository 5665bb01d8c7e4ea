"""What one Slurm job runs: its units one after the other, checkpointed at the time limit.

`JobOfRuns` is the callable submitit pickles for each job of a sweep (reprolib.sweep.jobs submits
it): it runs its units (runs, groups of runs, any work item the guarded runner takes) in turn and
logs a line per run (`reprolib job: start RUN`, then `done RUN` or `failed RUN`) in the job's log.

On the pre-timeout signal (submitit's `--signal=USR2@90`) the run in flight finishes, for at most
GRACE_S, then submitit's handler calls `JobOfRuns.checkpoint`, which hands the outcomes so far to
the requeued job (submitit's Checkpointable): it runs only the units not settled yet. Its runner,
outcomes and units travel as `Deferred` values, unpickled only once submitit's signal handlers
are set, so a signal during the seconds of imports (torch) is handled, not fatal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any


class JobOfRuns:
    """What one Slurm job runs: its units one after the other (picklable for submitit), with a line
    per run in the job's log (`start RUN`, then `done RUN` or `failed RUN`).

    Checkpointable: the pre-timeout signal (`--signal=USR2@90`: 90 s before the time limit; Slurm
    checks limits every 30 s, so 60-90 s before the kill) or a preemption lets the run in flight
    finish, for at most GRACE_S, and then submitit calls `checkpoint`, which hands the outcomes so far
    to the requeued job: it runs only the units not settled yet. A run still in flight after GRACE_S
    is abandoned (its record was never written; the log says so) and runs again after the requeue.
    Generic: a unit is whatever `guarded` takes (a run, a group of runs, any work item).

    Its runner, outcomes and units travel as `Deferred` values: the job unpickles them (and imports
    torch with them) only once submitit has set its signal handlers, so a signal during those
    seconds of imports is handled rather than fatal.
    """

    def __init__(self, guarded: Callable[[Any], Any], describe: Callable[[Any], str] = repr,
                 outcomes: Sequence[Any] = ()):
        self.work = Deferred((guarded, describe, list(outcomes)))

    @property
    def outcomes(self) -> list[Any]:
        return self.work.value[2]

    def __call__(self, units: list[Any] | Deferred) -> list[Any]:
        in_flight: list[str] = []
        with _deferred_signal(in_flight) as signalled:   # before the imports: a signal then waits too
            guarded, describe, outcomes = self.work.value
            units = units.value if isinstance(units, Deferred) else units
            if outcomes:
                _say(f"requeued: {len(outcomes)} of {len(units)} units settled before, running the rest")
            for unit in units[len(outcomes):]:
                if signalled:
                    signalled.pop()()   # submitit's handler: checkpoint, requeue, exit
                in_flight[:] = [describe(run) for run in _runs(unit)]
                for run in in_flight:
                    _say(f"start {run}")
                outcome = guarded(unit)
                in_flight.clear()
                outcomes.append(outcome)
                each = outcome if isinstance(unit, list) and isinstance(outcome, list) else [outcome] * len(_runs(unit))
                for run, one in zip(_runs(unit), each):   # a failure (Raised, RunError) carries its error line
                    _say(f"{'failed' if hasattr(one, 'traceback') else 'done'} {describe(run)}")
        return outcomes

    def checkpoint(self, units: list[Any] | Deferred) -> Any:
        """The same job with the outcomes so far: the requeued job skips them (submitit's Checkpointable)."""
        from submitit.helpers import DelayedSubmission

        if not self.work.loaded:   # signalled before anything ran: the job as it came
            _say("checkpoint: no unit settled yet; requeued")
            return DelayedSubmission(self, units)
        guarded, describe, outcomes = self.work.value
        total = len(units.value) if isinstance(units, Deferred) else len(units)
        _say(f"checkpoint: {len(outcomes)} of {total} units settled; requeued for the rest")
        return DelayedSubmission(JobOfRuns(guarded, describe, outcomes), units)


class Deferred:
    """A value that is pickled apart: unpickling a Deferred imports nothing, `.value` unpickles what
    it holds (cloudpickle, as submitit pickles)."""

    def __init__(self, value: Any):
        self._value, self._blob = value, None

    @property
    def loaded(self) -> bool:
        return self._blob is None

    @property
    def value(self) -> Any:
        if self._blob is not None:
            import cloudpickle

            self._value, self._blob = cloudpickle.loads(self._blob), None
        return self._value

    def __getstate__(self) -> dict[str, bytes]:
        import cloudpickle

        return {"blob": self._blob if self._blob is not None else cloudpickle.dumps(self._value)}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self._value, self._blob = None, state["blob"]


GRACE_S = 45   # after the pre-timeout signal, the run in flight may finish for this long (>= 60 s remain)


@contextlib.contextmanager
def _deferred_signal(in_flight: list[str]):
    """Inside: submitit's handler of the pre-timeout signal (SIGUSR2) is deferred to the end of the
    unit in flight, or GRACE_S, whichever comes first (then the runs `in_flight` names are logged as
    abandoned); the list it yields holds the deferred call."""
    number = getattr(signal, "SIGUSR2", None)
    handler = signal.getsignal(number) if number is not None else None
    if not callable(handler) or threading.current_thread() is not threading.main_thread():
        yield []
        return
    pending: list[Callable[[], None]] = []

    def now() -> None:   # at a unit's end: checkpoint and requeue
        pending.clear()
        signal.alarm(0)
        handler(number, None)

    def grace_over(signum: int, frame: Any) -> None:
        for run in in_flight:
            _say(f"abandoned {run}")   # its record was never written: it runs again after the requeue
        pending.clear()
        handler(number, frame)

    def later(signum: int, frame: Any) -> None:
        _say(f"signal {signal.Signals(signum).name}: finishing the run in flight (at most {GRACE_S} s), then requeue")
        pending[:] = [now]
        signal.signal(signal.SIGALRM, grace_over)
        signal.alarm(GRACE_S)

    alarm_before = signal.getsignal(signal.SIGALRM)
    signal.signal(number, later)
    try:
        yield pending
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, alarm_before)
        signal.signal(number, handler)


def _runs(unit: Any) -> list[Any]:
    return unit if isinstance(unit, list) else [unit]


def _say(line: str) -> None:
    print(f"reprolib job: {line}", flush=True)
