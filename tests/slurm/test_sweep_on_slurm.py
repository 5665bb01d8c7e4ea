"""The sweep on a real Slurm (tests/slurm/local_slurm.sh: one node, two fake GPUs, slurmdbd).

`make test-slurm` (part of `make test`) runs this module with REPROLIB_SLURM_TEST=1; the module
starts the local Slurm as root when none runs (and stops it afterwards), and skips with one line
when it cannot (not root, or apt cannot install the packages).

The main test submits a paper-dryrun slice through `make sweep PROFILE=paper-dryrun
EXECUTOR=slurm` from a process that sees no GPU: 12 prompt runs planned into 6 jobs of a one-minute
limit, in 3 arrays of at most 2 tasks (the rates passed make the paper-sized estimates bundle one
job of seven runs and five jobs of one). The seven-run job outlives slurmctld's 30-second
time-limit check, so it gets the pre-timeout signal (--signal=USR2@90 with --time=1: due at once),
finishes the run in flight, checkpoints and is requeued, and the requeued job runs only what has no
record. One job is cancelled with scancel while it waits for a GPU; the sweep resubmits its run.
The grid completes: every run's record exists once, every run started and finished exactly once
(the jobs' logs), and sacct shows the limit, the requeue and the cancellation. The other tests
give Slurm bad input: one line naming the value and what Slurm said, exit 2, nothing submitted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "slurm" / "local_slurm.sh"
SLICE = ["--only", "target=cifar10,method=vp/ilm,method=smm/ilm"]
# Small jobs for a 2-CPU node; estimates at 8x the assumed rates: a one-minute limit holds the
# longest full-data estimate with all six 4-shot runs (one job) and no second full-data run.
SMALL = ["--slurm", "cpus_per_task=1", "--slurm", "mem_gb=2", "--throughput-fwd", "24000",
         "--throughput-fwdbwd", "8000"]
FLAGS = [*SLICE, "--slurm", "timeout_min=1", "--slurm", "max_array_size=2", *SMALL]


@pytest.fixture(scope="module")
def local_slurm():
    """A running local Slurm: the one already up, else started here (root) and stopped after."""
    if os.environ.get("REPROLIB_SLURM_TEST") != "1":
        pytest.skip("real-Slurm tests run under `make test-slurm` (REPROLIB_SLURM_TEST=1)")
    if subprocess.run([SCRIPT, "status"], capture_output=True).returncode == 0:
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("no local Slurm runs, and starting one (tests/slurm/local_slurm.sh start) needs root")
    started = subprocess.run([SCRIPT, "start"], capture_output=True, text=True)
    if started.returncode != 0:
        line = (started.stderr.strip().splitlines() or ["no output"])[-1]
        if "apt-get" in line:   # no package mirror reachable: nothing to test against
            pytest.skip(f"no local Slurm: {line}")
        pytest.fail(f"local Slurm did not start: {line}")
    yield
    subprocess.run([SCRIPT, "stop"], capture_output=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh workbook home whose data is the checkout's (the dry-run root `make data-dryrun` wrote)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "data").symlink_to(REPO / "data", target_is_directory=True)
    return home


def _env(home: Path) -> dict[str, str]:
    # The submitting process sees no GPU (a login node); the jobs get theirs from Slurm's gres.
    return {**os.environ, "REPROLIB_HOME": str(home), "CUDA_VISIBLE_DEVICES": ""}


def test_a_paper_dryrun_slice_survives_a_cancelled_and_a_timed_out_job(local_slurm, home: Path, capsys,
                                                                     monkeypatch) -> None:
    from reprolib.cli import main

    monkeypatch.setenv("REPROLIB_HOME", str(home))
    assert main(["sweep", "--profile", "paper-dryrun", "--executor", "slurm", "--dry-run", *FLAGS]) == 0
    dry = capsys.readouterr().out   # the plan, after the cluster's checks: what the submission must submit
    planned = re.search(r"^slurm: (\d+) runs in (\d+) jobs, (\d+) array\(s\) of at most 2 \(largest 2\)", dry, re.M)
    assert planned and planned.groups() == ("12", "6", "3"), dry[-2000:]
    assert "slurm limits: partition main (MaxTime 480 min" in dry
    folder = home / "artifacts" / "paper-dryrun" / "submitit"
    make = ["make", "-s", "-o", ".venv/.setup-done", "sweep", "PROFILE=paper-dryrun", "EXECUTOR=slurm",
            f"SWEEP_FLAGS={' '.join(FLAGS)}"]   # -o: the environment `make test` set up is kept as it is
    sweep = subprocess.Popen(make, cwd=REPO, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    arrays: list[str] = []
    try:
        arrays = _submitted_arrays(folder, 3, sweep)
        cancelled = f"{arrays[-1]}_1"   # the last array's second job: it waits while two others hold the GPUs
        assert _state(cancelled) == "PENDING"
        subprocess.run(["scancel", cancelled], check=True)
        out, _ = sweep.communicate(timeout=1200)
    finally:   # a failed test leaves no sweep and no job behind
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGTERM)
            sweep.wait(timeout=60)
        for array in arrays:
            subprocess.run(["scancel", array], capture_output=True)
    assert sweep.returncode == 0, out[-3000:]
    assert "submitted 12 runs as 6 jobs in 3 array(s) to submitit (slurm)" in out
    assert "resubmitted (round 1 of 2: their jobs died) 1 runs as 1 jobs" in out   # the cancelled job's run
    assert "imported ticket dryrun-magnitude80" in out and "no CUDA GPU" not in out

    runs = home / "artifacts" / "paper-dryrun" / "runs"
    records = [json.loads(p.read_text()) for p in runs.glob("*.json") if not p.name.endswith(".failed.json")]
    assert len(records) == len({r["id"] for r in records}) == 12               # 0 lost, one record each
    assert not list(runs.glob("*.failed.json"))
    logs = {p.name: p.read_text() for p in sorted(folder.glob("*_log.out"))}
    every = "".join(logs.values())
    starts, dones, abandoned = (Counter(re.findall(rf"^reprolib job: {event} (.+)$", every, re.M))
                                for event in ("start", "done", "abandoned"))
    assert len(dones) == 12 and set(dones.values()) == {1}                     # every run finished once: 0 twice
    assert starts - dones == abandoned                                         # a second start only where logged
    assert sum(abandoned.values()) <= 1, abandoned                              # (a run outliving the grace)

    accounting = _sacct(arrays)
    assert {row["Timelimit"] for row in accounting} == {"00:01:00"}
    assert max(Counter(row["JobID"].split("_")[0] for row in accounting).values()) <= 2 * 8   # 2 tasks, requeues
    assert not [row for row in accounting if row["JobID"] == cancelled]         # cancelled before it started
    first = f"{arrays[0]}_0"   # the seven-run job: its time limit came, it was requeued and finished
    assert "REQUEUED" in {row["State"] for row in accounting if row["JobID"] == first}
    first_log = logs[f"{first}_0_log.out"]
    assert "reprolib job: checkpoint:" in first_log and "reprolib job: requeued:" in first_log


def _submitted_arrays(folder: Path, count: int, sweep: subprocess.Popen, wait_s: float = 180) -> list[str]:
    """The Slurm ids of the sweep's `count` arrays (submitit's batch files, <id>_submission.sh)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        ids = sorted((p.name.split("_")[0] for p in folder.glob("*_submission.sh")), key=int)
        if len(ids) >= count:
            return ids[:count]
        if sweep.poll() is not None:
            pytest.fail(f"the sweep ended before submitting: {sweep.stdout.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {count} arrays in {folder} after {wait_s:.0f} s")


def _state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _sacct(arrays: list[str]) -> list[dict[str, str]]:
    """Every record sacct holds for these arrays' jobs (requeued starts included)."""
    fields = ["JobID", "State", "Timelimit"]
    shown = subprocess.run(["sacct", "-n", "-P", "-X", "--duplicates", "-j", ",".join(arrays),
                            "-o", ",".join(fields)], capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in shown.splitlines() if line.strip()]


@pytest.mark.parametrize("flags, said", [
    (["--slurm", "partition=nosuch"], "--slurm partition 'nosuch': Slurm says 'Partition nosuch not found'; "
                                      "valid choices: main"),
    (["--slurm", "account=nosuch"], "Slurm refuses account='nosuch', partition=None (sbatch --test-only: "
                                    "'Invalid account or account/partition combination specified')"),
    (["--slurm", "gpus_per_node=3"], "Slurm refuses gpus_per_node=3, cpus_per_task=1, mem_gb=2.0 (sbatch --test-only: "
                                     "'Requested node configuration is not available'); partition main has nodes "),
    (["--slurm", "constraint=h100"], "Slurm refuses constraint='h100' (sbatch --test-only: 'Invalid feature "
                                     "specification')"),
    (["--slurm", "timeout_min=600"], "--slurm timeout_min 600 is above partition main's MaxTime (480 min): Slurm would "
                                     "queue the jobs and never start them; valid: timeout_min <= 480"),
    (["--slurm", "timeout_min=1", "--throughput-fwd", "3000", "--throughput-fwdbwd", "1000"],
     "Slurm timeout_min 1 is shorter than the run cifar10 smm/ilm dense full seed 1"),
])
def test_bad_cluster_input_is_one_line_naming_it_and_nothing_is_submitted(local_slurm, home: Path, flags, said,
                                                                          capsys, monkeypatch) -> None:
    from reprolib.cli import main

    monkeypatch.setenv("REPROLIB_HOME", str(home))
    assert main(["sweep", "--profile", "paper-dryrun", "--executor", "slurm", *SLICE, *SMALL, *flags]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert not (home / "artifacts" / "paper-dryrun").exists()   # no ticket imported, no job, no log


def test_a_slurm_that_does_not_answer_is_one_line_and_nothing_is_submitted(local_slurm, home: Path, tmp_path,
                                                                          capsys, monkeypatch) -> None:
    from reprolib.cli import main

    conf = re.search(r"^SLURM_CONF=(.+)$", subprocess.run([SCRIPT, "status"], capture_output=True, text=True).stdout,
                     re.M).group(1)
    unreachable = tmp_path / "etc" / "slurm.conf"   # the same cluster, its controller on a port nothing serves
    unreachable.parent.mkdir()
    unreachable.write_text(re.sub(r"^SlurmctldHost=.*$", "SlurmctldHost=nohost(127.0.0.1)\nSlurmctldPort=9",
                                  Path(conf).read_text(), flags=re.M)
                           + "MessageTimeout=1\n")   # Slurm gives up at once rather than after ~9 s of retries
    (unreachable.parent / "gres.conf").write_text((Path(conf).parent / "gres.conf").read_text())
    monkeypatch.setenv("SLURM_CONF", str(unreachable))
    monkeypatch.setenv("REPROLIB_HOME", str(home))
    assert main(["sweep", "--profile", "paper-dryrun", "--executor", "slurm", *FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Slurm is not reachable: scontrol show config says ") and err.count("\n") == 1
    assert "Unable to contact slurm controller" in err
    assert not (home / "artifacts" / "paper-dryrun").exists()
