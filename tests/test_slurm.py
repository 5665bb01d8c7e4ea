"""Slurm through submitit: jobs bundled under their time limit, arrays under max_array_size, the
batch script submitit would submit (rendered, not submitted), submitit's local executor end to end
with bundled jobs and a resubmission of only what is missing, and bad cluster input."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprolib.sweep import slurm
from reprolib.config import load_profile
from reprolib.sweep.cost import RunTimer, throughput
from reprolib.errors import ReprolibError
from reprolib.sweep.runner import SubmititOptions, build_grid, run_sweep
from sweep_fakes import fake_existing, fake_run


def _paper_timer():
    profile = load_profile("paper")
    return build_grid(profile), RunTimer(profile, throughput(profile.backbone, 3000.0, 1000.0))


def test_paper_grid_jobs_fit_their_limit_and_arrays_fit_max_array_size() -> None:
    configs, timer = _paper_timer()
    options = slurm.ClusterOptions(timeout_min=480, max_array_size=100, margin=1.5)
    jobs = slurm.bundle(configs, timer.seconds, options)
    assert sorted(i for job in jobs for i in job) == list(range(len(configs)))   # every run in one job
    estimates = [options.margin * sum(timer.seconds(configs[i]) for i in job) for job in jobs]
    assert max(estimates) <= options.timeout_min * 60                         # every job within its limit
    assert len(jobs) < len(configs) / 4                                       # small runs share jobs
    chunks = slurm.arrays(jobs, options.max_array_size)
    assert max(len(chunk) for chunk in chunks) <= 100 and sum(map(len, chunks)) == len(jobs)
    assert len(chunks) == -(-len(jobs) // 100)


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


def test_cli_slurm_dry_run_prints_jobs_and_script_and_refuses_bad_input(capsys, tmp_path: Path) -> None:
    from reprolib.cli import main

    assert main(["sweep", "--profile", "paper-headline", "--dry-run", "--executor", "slurm",
                 "--slurm", "max_array_size=4", "--slurm", "timeout_min=200"]) == 0
    out = capsys.readouterr().out
    assert "array(s) of at most 4" in out and "#SBATCH --time=200" in out and "#SBATCH --array=0-3%4" in out
    for bad, message in ((["--slurm", "timeout_min=1"], "shorter than the run"),
                         (["--slurm", "partion=gpu"], "unknown Slurm option 'partion'")):
        assert main(["sweep", "--profile", "paper-headline", "--executor", "slurm", *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    import shutil
    if shutil.which("sbatch") is None:   # a machine without Slurm says so instead of a submitit traceback
        assert main(["sweep", "--profile", "paper-headline", "--executor", "slurm"]) == 2
        assert "no Slurm here (sbatch not found)" in capsys.readouterr().err


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
