"""Slurm through submitit: one job plan for the dry run and the submission (groups split to fit
the limit, jobs bundled under it, arrays under max_array_size), the batch script submitit would
submit (rendered, not submitted), Slurm's answers parsed, a job's checkpoint on the pre-timeout
signal, submitit's local executor end to end with bundled jobs and a resubmission of only what is
missing, and bad cluster input. A real Slurm runs the sweep in tests/slurm/test_sweep_on_slurm.py."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from reprolib.sweep import cluster, slurm, slurm_job
from reprolib.config import load_profile, profile_names
from reprolib.sweep.cost import RunTimer, throughput
from reprolib.errors import ReprolibError
from reprolib.sweep.runner import SubmititOptions, build_grid, run_sweep, sweep_units
from sweep_fakes import fake_existing, fake_run


def _paper_timer():
    profile = load_profile("paper")
    return build_grid(profile), RunTimer(profile, throughput(profile.backbone, 3000.0, 1000.0))


def test_paper_grid_jobs_fit_their_limit_and_arrays_fit_max_array_size() -> None:
    configs, timer = _paper_timer()
    options = slurm.ClusterOptions(timeout_min=480, max_array_size=100, margin=1.5)
    plan = slurm.plan_jobs(sweep_units(configs, None, local=False), timer.seconds, options)
    runs = [id(c) for i in sorted(i for job in plan.jobs for i in job)
            for c in (plan.units[i] if isinstance(plan.units[i], list) else [plan.units[i]])]
    assert sorted(runs) == sorted(map(id, configs))                             # every run in exactly one job
    estimates = [options.margin * sum(slurm.unit_seconds(plan.units[i], timer.seconds) for i in job)
                 for job in plan.jobs]
    assert max(estimates) <= options.timeout_min * 60                           # every job within its limit
    assert estimates == pytest.approx([options.margin * s for s in plan.seconds])
    assert len(plan.jobs) < len(configs) / 4                                    # small runs share jobs
    assert max(len(array) for array in plan.arrays) <= 100 and sum(map(len, plan.arrays)) == len(plan.jobs)
    assert len(plan.arrays) == -(-len(plan.jobs) // 100)


@pytest.mark.parametrize("name", ["paper", "paper-headline"])
def test_groups_that_do_not_fit_the_limit_are_split_until_they_fit(name: str) -> None:
    """On CUDA prompt runs are grouped (16 at a time); a group of full-data runs is far above the
    profile's timeout_min, so the planner splits it (once, it refused the whole profile)."""
    profile = load_profile(name)
    configs = build_grid(profile)
    timer = RunTimer(profile, throughput(profile.backbone, 3000.0, 1000.0))
    options = slurm.cluster_options(profile.cluster)
    units = sweep_units(configs, None, local=False)
    too_long = [u for u in units if isinstance(u, list) and
                options.margin * slurm.unit_seconds(u, timer.seconds) > options.timeout_min * 60]
    assert too_long                                                             # the grouping alone would not fit
    plan = slurm.plan_jobs(units, timer.seconds, options)
    limit = options.timeout_min * 60
    assert all(options.margin * slurm.unit_seconds(u, timer.seconds) <= limit for u in plan.units)
    flat = [c for u in plan.units for c in (u if isinstance(u, list) else [u])]
    assert sorted(map(id, flat)) == sorted(map(id, configs))
    whole = [u for u in units if isinstance(u, list) and u not in too_long]
    assert all(any(u is v for v in plan.units) for u in whole)                  # groups that fit stay whole
    assert any(isinstance(u, list) and len(u) > 1 for u in slurm.fit_groups(too_long, timer.seconds, options))


def test_fit_groups_packs_a_group_s_runs_into_the_fewest_parts_that_fit() -> None:
    runs = [f"full{i}" for i in range(4)] + [f"shot{i}" for i in range(12)]
    minutes = {name: 100.0 if name.startswith("full") else 1.0 for name in runs}

    def seconds(run, group_runs=1):   # a run in a group costs a little less (its share of the floor)
        return 60 * minutes[run] * (1.0 if group_runs == 1 else 0.9)

    options = slurm.ClusterOptions(timeout_min=240, margin=1.5)                 # 160 estimated minutes a job
    parts = slurm.fit_groups([runs], seconds, options)
    assert sorted(r for p in parts for r in (p if isinstance(p, list) else [p])) == sorted(runs)
    assert len(parts) == 4 and all(isinstance(p, list) for p in parts)          # one full-data run each
    assert all(options.margin * slurm.unit_seconds(p, seconds) <= 240 * 60 for p in parts)
    assert slurm.fit_groups([runs[4:]], seconds, options) == [runs[4:]]         # a group that fits is kept


def test_a_limit_shorter_than_a_run_and_unknown_options_are_one_line_errors() -> None:
    configs, timer = _paper_timer()
    with pytest.raises(ReprolibError, match="Slurm timeout_min 5 is shorter than the run .*valid: timeout_min >= "):
        slurm.bundle(configs, timer.seconds, slurm.ClusterOptions(timeout_min=5))
    with pytest.raises(ReprolibError, match="unknown Slurm option 'gres_per_node'; valid choices: partition, account"):
        slurm.cluster_options({}, ["gres_per_node=2"])
    with pytest.raises(ReprolibError, match="unknown Slurm option 'nodes'"):
        slurm.cluster_options({"nodes": 2})
    with pytest.raises(ReprolibError, match="--slurm gpus_per_node is '0'; valid: >= 1"):
        slurm.cluster_options({}, ["gpus_per_node=0"])
    with pytest.raises(ReprolibError, match="--slurm mem_gb is 'nan'; valid: a finite number"):
        slurm.cluster_options({}, ["mem_gb=nan"])
    with pytest.raises(ReprolibError, match="--slurm margin is 'nan'; valid: a finite number"):
        slurm.cluster_options({}, ["margin=nan"])
    with pytest.raises(ReprolibError, match=r"cluster option margin is float 0.5; valid: >= 1"):
        slurm.cluster_options({"margin": 0.5})
    assert slurm.cluster_options({"timeout_min": 60}, ["partition=gpu", "mem_gb=40.5"]) == \
        slurm.ClusterOptions(partition="gpu", timeout_min=60, mem_gb=40.5)


def test_the_batch_script_asks_for_what_the_profile_says(tmp_path: Path) -> None:
    options = slurm.cluster_options({"partition": "gpu", "account": "lab", "qos": "normal", "constraint": "h100",
                                     "gpus_per_node": 1, "cpus_per_task": 10, "mem_gb": 64, "timeout_min": 180,
                                     "array_parallelism": 12, "max_array_size": 500}, ["qos=high"])
    script = slurm.sbatch_script(options, 40, tmp_path)
    lines = {line for line in script.splitlines() if line.startswith("#SBATCH")}
    assert {"#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --qos=high", "#SBATCH --constraint=h100",
            "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=10", "#SBATCH --mem=64GB", "#SBATCH --time=180",
            "#SBATCH --array=0-39%12"} <= lines
    assert "#SBATCH --array=0-3%4" in slurm.sbatch_script(options, 4, tmp_path)   # parallelism capped by size


def test_cli_slurm_dry_run_prints_jobs_and_script_and_refuses_bad_input(capsys, monkeypatch) -> None:
    from reprolib.cli import main

    monkeypatch.setattr(cluster, "available", lambda: False)   # this test is about a machine without Slurm
    assert main(["sweep", "--profile", "paper-headline", "--dry-run", "--executor", "slurm",
                 "--slurm", "max_array_size=4", "--slurm", "timeout_min=200"]) == 0
    out = capsys.readouterr().out
    assert "array(s) of at most 4" in out and "#SBATCH --time=200" in out and "#SBATCH --array=0-3%4" in out
    assert "no Slurm here: MaxArraySize, MaxTime and sbatch --test-only not checked" in out
    for bad, message in ((["--slurm", "timeout_min=1"], "shorter than the run"),
                         (["--slurm", "partion=gpu"], "unknown Slurm option 'partion'")):
        assert main(["sweep", "--profile", "paper-headline", "--executor", "slurm", *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    # a machine without Slurm says so instead of a submitit traceback (and never "no CUDA GPU is visible")
    assert main(["sweep", "--profile", "paper-headline", "--executor", "slurm"]) == 2
    assert "no Slurm here (sbatch not found)" in capsys.readouterr().err


class _AllSubmitted(Exception):
    """Raised by the recording executor's jobs once everything is submitted: the sweep stops there."""


class _Recorder:
    """Stands in for submitit.AutoExecutor at the cluster's door: records every array submitit would
    submit (its parameters and jobs) and submits nothing."""

    arrays: list[tuple[dict, list[list]]] = []
    made: list[dict] = []

    def __init__(self, folder, cluster=None, **kwargs):
        self.cluster, self.params = cluster, {}
        _Recorder.made.append(kwargs)

    @staticmethod
    def which() -> str:
        return "local"

    def update_parameters(self, **params) -> None:
        self.params.update(params)

    def map_array(self, function, jobs):
        _Recorder.arrays.append((dict(self.params), [list(job.value) for job in jobs]))
        return [_Unfinished() for _ in jobs]


class _Unfinished:
    def done(self, force_check: bool = False) -> bool:
        raise _AllSubmitted


@pytest.mark.parametrize("name", [n for n in profile_names() if load_profile(n).cluster])
def test_the_dry_run_plans_exactly_the_jobs_the_submission_submits(name: str, capsys, monkeypatch) -> None:
    """Every shipped profile with a `cluster:` section: the dry run's jobs, arrays and time limit are
    what `sweep --executor submitit` hands to submitit (the same plan: groups split, jobs bundled)."""
    import submitit

    import reprolib.sweep.jobs as sweep_jobs
    from reprolib.cli import main

    monkeypatch.setattr(submitit, "AutoExecutor", _Recorder)
    monkeypatch.setattr(sweep_jobs, "_on_disk", lambda unit: False)   # a fresh results folder
    monkeypatch.setattr(_Recorder, "arrays", [])
    flags = ["--profile", name, "--executor", "submitit", "--cluster", "local", "--slurm", "max_array_size=50"]
    assert main(["sweep", *flags, "--dry-run"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("slurm: "))
    found = re.match(r"slurm: (\d+) runs.* in (\d+) jobs, (\d+) array\(s\) of at most 50 \(largest (\d+)\).*"
                     r"<= timeout_min (\d+)", line)
    runs, jobs, arrays, largest, timeout = map(int, found.groups())
    with pytest.raises(_AllSubmitted):
        main(["sweep", *flags])
    submitted = _Recorder.arrays
    assert len(submitted) == arrays and sum(len(job_list) for _, job_list in submitted) == jobs
    assert max(len(job_list) for _, job_list in submitted) == largest
    assert {params["timeout_min"] for params, _ in submitted} == {timeout} == {load_profile(name).cluster["timeout_min"]}
    assert _Recorder.made[-1]["local_max_num_timeout"] == max(3, max(len(job) for _, js in submitted for job in js))
    units = [unit for _, job_list in submitted for job in job_list for unit in job]
    assert sum(len(u) if isinstance(u, list) else 1 for u in units) == runs == len(build_grid(load_profile(name)))


def test_paper_headline_fits_one_gpu_day() -> None:
    profile = load_profile("paper-headline")
    configs = build_grid(profile)
    timer = RunTimer(profile, throughput(profile.backbone, 3000.0, 1000.0))
    assert sum(timer.seconds(c) for c in configs) / 3600 <= 24
    assert {c.target for c in configs} == {"cifar10", "flowers102"} and not profile.trains_in_notebooks
    assert {c.n_shot for c in configs} == {1, 10, 100, -1} and {c.seed for c in configs} == {1, 2, 3}


@pytest.mark.slow
def test_submitit_local_executor_runs_bundled_jobs_and_resubmits_only_what_is_missing(tmp_path: Path, capsys,
                                                                                       monkeypatch) -> None:
    pytest.importorskip("submitit")
    import reprolib.sweep.runner as sweep
    import reprolib.sweep.jobs as sweep_jobs

    monkeypatch.setattr(sweep, "run_transfer", fake_run)          # the default runner's path, records faked
    monkeypatch.setattr(sweep_jobs, "existing_record", fake_existing)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))   # the job processes import sweep_fakes
    results = tmp_path / "runs"
    configs = [c.replace(results_path=str(results)) for c in build_grid(load_profile("smoke"))][:6]
    options = SubmititOptions(cluster="local", folder=tmp_path / "logs",
                              options=slurm.ClusterOptions(timeout_min=3, margin=1.0))
    summary = run_sweep(configs, executor="submitit", submitit=options, seconds=lambda c: 60.0)
    assert summary.ok and len(summary.records) == 6
    assert "submitted 6 runs as 2 jobs" in capsys.readouterr().out   # 3 one-minute runs per 3-minute job
    (results / f"{summary.records[0]['id']}.json").unlink()
    again = run_sweep(configs, executor="submitit", submitit=options, seconds=lambda c: 60.0)
    assert "submitted 1 runs as 1 jobs" in capsys.readouterr().out
    assert again.ok and [r["id"] for r in again.records] == [r["id"] for r in summary.records]
    log = (tmp_path / "executions.log").read_text()
    assert log.count(f"done {summary.records[0]['id']}") == 2 and log.count("done") == 7


def test_a_job_killed_at_its_limit_loses_only_its_unfinished_runs(tmp_path: Path, monkeypatch) -> None:
    import reprolib.sweep.jobs as sweep_jobs

    monkeypatch.setattr(sweep_jobs, "existing_record", fake_existing)
    configs = [c.replace(results_path=str(tmp_path)) for c in build_grid(load_profile("smoke"))][:3]
    finished = fake_run(configs[0])                                   # the job wrote this one, then hit its limit
    died = sweep_jobs.Raised("UncompletedJobError: job 12_3 timed out", "")
    assert sweep_jobs._recorded_or(configs[0], died, True) == finished
    assert sweep_jobs._recorded_or(configs[1], died, True) is died
    assert sweep_jobs._recorded_or(configs[:2], died, True) == [finished, died]   # a group, run by run
    assert sweep_jobs._recorded_or(configs[0], died, False) is died   # a runner whose records we cannot read


def _job_with_a_signal(units, signal_during, pause_s, log):
    """A JobOfRuns over `units` whose run `signal_during` sends the pre-timeout signal to this process,
    then keeps working for `pause_s`; `log` records what happened, in order."""
    import time

    def run(unit):
        log.append(("start", unit))
        if unit == signal_during:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(pause_s)
        log.append(("done", unit))
        return {"id": unit}
    return slurm_job.JobOfRuns(run, describe=str)


def _until_requeued(job, units, log) -> None:
    """Run `job` with a stand-in for submitit's USR2 handler (log the outcomes so far, checkpoint,
    exit as submitit does), SIGUSR2's handler restored after."""
    def submitit_handler(signum, frame):
        log.append(("checkpoint", len(job.outcomes)))
        log.append(("requeued", job.checkpoint(units)))
        raise SystemExit(-1)

    before = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        with pytest.raises(SystemExit):
            job(units)
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert signal.getsignal(signal.SIGUSR2) is before and signal.alarm(0) == 0


def test_on_the_pre_timeout_signal_a_job_finishes_its_run_then_checkpoints_only_what_is_left(capsys) -> None:
    units, log = ["a", "b", "c", "d"], []
    job = _job_with_a_signal(units, "b", 0.3, log)
    _until_requeued(job, units, log)
    assert log[:5] == [("start", "a"), ("done", "a"), ("start", "b"), ("done", "b"), ("checkpoint", 2)]
    requeued = log[5][1]                                  # submitit's DelayedSubmission of the same units
    assert requeued.args == (units,) and requeued.function.outcomes == [{"id": "a"}, {"id": "b"}]
    log.clear()
    assert requeued.result() == [{"id": u} for u in units]   # the requeued job runs only c and d
    assert log == [("start", "c"), ("done", "c"), ("start", "d"), ("done", "d")]
    out = capsys.readouterr().out
    assert "reprolib job: signal SIGUSR2: finishing the run in flight" in out
    assert "reprolib job: requeued: 2 of 4 units settled before, running the rest" in out


def test_a_run_still_in_flight_after_the_grace_is_abandoned_and_checkpointed(monkeypatch, capsys) -> None:
    units, log = ["a", "b", "c"], []
    job = _job_with_a_signal(units, "b", 3.0, log)
    monkeypatch.setattr(slurm_job, "GRACE_S", 1)
    _until_requeued(job, units, log)
    assert log[:4] == [("start", "a"), ("done", "a"), ("start", "b"), ("checkpoint", 1)]   # b runs again later
    assert log[4][1].function.outcomes == [{"id": "a"}]
    assert "reprolib job: abandoned b\n" in capsys.readouterr().out


def test_a_run_s_errors_are_its_own_but_submitit_s_end_of_the_job_is_not() -> None:
    from submitit.core.utils import UncompletedJobError

    from reprolib.sweep.jobs import Guarded, Raised

    assert isinstance(Guarded(lambda unit: 1 / 0)("x"), Raised)
    with pytest.raises(UncompletedJobError):   # "timed-out too many times", raised by submitit's handler mid-run
        Guarded(lambda unit: (_ for _ in ()).throw(UncompletedJobError("Job not requeued")))("x")


def test_slurm_times_and_refusals_are_read_as_slurm_writes_them() -> None:
    assert [cluster.parse_minutes(t) for t in ("UNLIMITED", "08:00:00", "2-00:00:00", "01:30:00", "90", "5:30",
                                               "1-12", "1-12:30")] == [None, 480, 2880, 90, 90, 5, 2160, 2190]
    assert cluster._named("Invalid account or account/partition combination specified") == ("account", "partition")
    assert cluster._named("Requested node configuration is not available") == ("gpus_per_node", "cpus_per_task",
                                                                                "mem_gb")
    assert cluster._named("Invalid generic resource (gres) specification") == ("gpus_per_node",)
    assert cluster._last_line("sbatch: error: invalid partition specified: x\nsbatch: error: Batch job submission "
                              "failed: Invalid partition name specified") == \
        "Batch job submission failed: Invalid partition name specified"


def test_a_login_node_without_a_gpu_names_the_runs_its_gpu_jobs_will_run() -> None:
    import torch

    from reprolib.devices import jobs_run_on, resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ReprolibError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    with jobs_run_on("cuda"):
        assert resolve_device("cuda") == "cuda" and resolve_device("auto") == "cpu"
    with pytest.raises(ReprolibError):
        resolve_device("cuda")


def test_a_job_unpickles_without_importing_torch_so_submitit_s_handlers_come_first(tmp_path: Path) -> None:
    """submitit unpickles the job, then sets its signal handlers; torch's import takes seconds, and a
    pre-timeout signal in those seconds would kill a job without a handler. The job's runner, outcomes
    and units are Deferred: unpickling them imports neither torch nor the transfer code."""
    import subprocess
    import sys

    import cloudpickle

    from reprolib.sweep.jobs import Guarded
    from reprolib.transfer.run import run_transfer

    configs = build_grid(load_profile("smoke"))[:3]
    blob = tmp_path / "job.pkl"
    blob.write_bytes(cloudpickle.dumps((slurm_job.JobOfRuns(Guarded(run_transfer), str, [{"id": "x"}]),
                                        slurm_job.Deferred(configs))))
    code = (f"import pickle, sys; job, units = pickle.loads(open({str(blob)!r}, 'rb').read()); "
            "print(sorted(m for m in ('torch', 'reprolib.transfer.run', 'reprolib.transfer.config') if m in sys.modules)); "
            "print(len(units.value), job.outcomes, 'torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert shown[0] == "[]" and shown[1] == "3 [{'id': 'x'}] True"


@pytest.mark.parametrize("name", [n for n in profile_names() if load_profile(n).cluster])
def test_the_job_counts_a_profile_s_comments_quote_are_the_dry_run_s(name: str) -> None:
    from reprolib.config import profile_path

    text = " ".join(line.lstrip("# ") for line in profile_path(name).read_text().splitlines() if line.startswith("#"))
    quoted = re.search(r"plans the (\d+) runs as (\d+) jobs in (\d+) array", text)
    assert quoted, f"{name}.yaml quotes no job plan"
    profile = load_profile(name)
    timer = RunTimer(profile, throughput(profile.backbone, 3000.0, 1000.0))   # the assumed rates the comment names
    configs = build_grid(profile)
    plan = slurm.plan_jobs(sweep_units(configs, None, local=False), timer.seconds, slurm.cluster_options(profile.cluster))
    assert tuple(map(int, quoted.groups())) == (len(configs), len(plan.jobs), len(plan.arrays))
