"""Faults during a sweep (smoke profile, 2 worker processes, the fake runner of sweep_fakes):
kill -9 of the main process (then a stale lock), Ctrl-C, two sweeps on one folder, SIGTERM.
Every case: 0 runs lost, 0 orphan processes, no half-written or failure record from an
interrupt, and the ledger rebuilt (also after an interrupt)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from sweep_fakes import PAUSE_ENV, command, fake_run

def _expected() -> int:
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid

    return len(build_grid(load_profile("smoke")))


def _start(results: Path, pause: float = 0.4, *args: str, sigint_ignored: bool = False) -> subprocess.Popen:
    """The sweep in its own process group; `sigint_ignored`: as a script's background job starts it."""
    env = {**os.environ, PAUSE_ENV: str(pause)}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen(command(results, "--workers", "2", *args), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=ignore)


def _records(results: Path) -> list[Path]:
    return [p for p in results.glob("*.json") if not p.name.endswith(".failed.json")]


def _wait_for(condition, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _worker_pids(results: Path, main_pid: int) -> set[int]:
    log = results.parent / "executions.log"
    pids = {int(line.split()[2]) for line in log.read_text().splitlines()} if log.exists() else set()
    return pids - {main_pid}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _check_whole(results: Path) -> None:
    assert all(json.loads(p.read_text())["id"] == p.stem for p in _records(results))   # none half-written
    assert not list(results.glob("*.failed.json")), "an interrupt was recorded as a failure"
    assert not [p for p in results.iterdir() if p.name.endswith(".tmp")]


def _rerun_completes(results: Path, expected: int, capsys) -> str:
    """The next sweep, in this process (no interpreter to start): finishes the grid, each run written once."""
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid, run_sweep

    configs = [c.replace(results_path=str(results)) for c in build_grid(load_profile("smoke"))]
    capsys.readouterr()
    assert run_sweep(configs, runner=fake_run).ok
    assert len(_records(results)) == expected                                  # 0 runs lost
    log = (results.parent / "executions.log").read_text().split("\n")
    done = Counter(line.split()[1] for line in log if line.startswith("done"))
    assert max(done.values()) == 1 and len(done) == expected                   # none written twice
    return capsys.readouterr().out


@pytest.mark.slow
def test_kill_9_of_the_main_process_leaves_no_worker_and_the_rerun_finishes(tmp_path: Path, capsys) -> None:
    results, expected = tmp_path / "runs", _expected()
    sweep = _start(results)
    _wait_for(lambda: len(_records(results)) >= 4)
    workers = _worker_pids(results, sweep.pid)
    assert len(workers) == 2
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in workers), seconds=5)    # 0 orphans within seconds
    _check_whole(results)
    err = sweep.stderr.read()   # the workers and the resource tracker are gone: nothing leaked, nothing said
    assert "leaked semaphore" not in err and "Traceback" not in err and "Process reprolib-worker" not in err, err
    assert (results / ".sweep.lock").exists()
    out = _rerun_completes(results, expected, capsys)
    assert f"taking over the stale sweep lock of pid {sweep.pid}" in out
    assert not (results / ".sweep.lock").exists()


def _stop(sweep: subprocess.Popen, results: Path, signum: int) -> None:
    """Send `signum` (SIGINT to the process group, as a terminal's Ctrl-C does) and check the stop."""
    workers = _worker_pids(results, sweep.pid)
    assert len(workers) == 2
    if signum == signal.SIGINT:
        os.killpg(sweep.pid, signum)
    else:
        os.kill(sweep.pid, signum)
    stopped = time.monotonic()
    _, err = sweep.communicate(timeout=15)
    assert time.monotonic() - stopped < 8 and sweep.returncode == 130, err   # within seconds
    assert "interrupted; finished runs are kept" in err
    assert "leaked semaphore" not in err and "Traceback" not in err, err
    assert not any(_alive(pid) for pid in workers)
    done_at_exit = len(_records(results))
    time.sleep(1.5)
    assert len(_records(results)) == done_at_exit                            # nothing trains on
    _check_whole(results)
    assert int((results.parent / "ledger-rebuilt").read_text()) == done_at_exit   # ledger after the interrupt
    assert not (results / ".sweep.lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "background-job"])
def test_ctrl_c_stops_the_sweep_and_its_workers_within_seconds(tmp_path: Path, capsys, sigint_ignored) -> None:
    results, expected = tmp_path / "runs", _expected()
    sweep = _start(results, 1.0, sigint_ignored=sigint_ignored)
    _wait_for(lambda: len(_records(results)) >= 2)
    _stop(sweep, results, signal.SIGINT)
    assert len(_records(results)) < expected
    _rerun_completes(results, expected, capsys)


@pytest.mark.slow
def test_a_second_sweep_says_who_holds_the_folder_and_sigterm_stops_the_first(tmp_path: Path, capsys) -> None:
    import socket

    results, expected = tmp_path / "runs", _expected()
    first = _start(results, 2.0)
    _wait_for(lambda: (results / ".sweep.lock").exists() and len(_records(results)) >= 1)
    second = subprocess.run(command(results, "--workers", "1"), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert second.stderr.strip() == second.stderr.strip().splitlines()[0]   # one line
    assert f"in use by the sweep command (pid {first.pid} on host {socket.gethostname()!r}" in second.stderr
    assert not (results.parent / "ledger-rebuilt").exists()   # a refused sweep writes nothing, not even its ledger
    _stop(first, results, signal.SIGTERM)   # SIGTERM stops a sweep as Ctrl-C does; the lock goes with it
    _rerun_completes(results, expected, capsys)
