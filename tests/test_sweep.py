"""Sweep: the grid of a profile, resumable after kill -9, and the submitit path (local executor).

The runs use a cheap runner with run_transfer's contract (hash the config, skip an existing
record, write the record atomically with reprolib.records), so the test exercises the
sweep's resume logic in seconds; test_transfer covers the real runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.sweep.runner import SubmititOptions, build_grid, parse_arm, run_sweep

RUNNER = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    from reprolib.records import record_exists, read_record, record_id, write_json_atomic

    def fake_run(cfg, pause=0.0):
        """run_transfer's contract: skip an existing record, else 'train' and write it atomically."""
        hashed = {k: v for k, v in cfg.to_dict().items() if k not in ("results_path", "progress")}
        hashed["network_fingerprint"] = [cfg.network, cfg.kind, cfg.level, cfg.pretrained_dir]
        run_id = record_id(hashed)
        out = Path(cfg.results_path)
        path = out / f"{run_id}.json"
        if record_exists(path):
            return read_record(path)
        with open(out.parent / "executions.log", "a") as log:
            log.write(f"start {run_id}\\n")
        time.sleep(pause)
        record = {"id": run_id, "config": hashed, "metrics": {"accuracy": 0.5, "ece": 0.1, "nll": 1.0}, "padding": "x" * 200_000}
        write_json_atomic(path, record)
        with open(out.parent / "executions.log", "a") as log:
            log.write(f"done {run_id}\\n")
        return record
''')

SWEEP_SCRIPT = RUNNER + textwrap.dedent('''
    from functools import partial
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid, run_sweep

    results = sys.argv[1]
    configs = [c.replace(results_path=results) for c in build_grid(load_profile("smoke", seeds=[1, 2]))]
    run_sweep(configs, runner=partial(fake_run, pause=0.05))
''')


def _grid(results: Path):
    return [c.replace(results_path=str(results)) for c in build_grid(load_profile("smoke", seeds=[1, 2]))]


def test_grid_covers_targets_arms_tickets_shots_and_seeds() -> None:
    # full-data runs have their own seeds; replicate 1's grid (the subgrids: tests/test_replicates.py)
    profile = load_profile("embedded", full_data_seeds=[1], replicates=1, subgrids=[])
    grid = build_grid(profile)
    tickets = 5 + 2   # dense + IMP levels 2, 4, 6, 8 + magnitude and random at level 8
    per_ticket = 3 * 3 + 1   # 1/5/10-shot x 3 seeds + full data x 1 seed
    assert len(grid) == 2 * 5 * tickets * per_ticket
    keys = {(c.target, c.method, c.label_map, c.network, c.kind, c.level, c.n_shot, c.seed) for c in grid}
    assert len(keys) == len(grid)
    assert ("digits", "vp", "flm", "LT", "random", 8, 5, 3) in keys
    assert ("glyphs", "lp", None, "dense", "imp", 0, -1, 1) in keys
    assert not any(c.n_shot == -1 and c.seed != 1 for c in grid)
    assert {c.results_path for c in grid} == {str(profile.path("artifacts") / "runs")}


def test_bad_method_names_are_one_line_errors() -> None:
    assert parse_arm("vp/ilm") == ("vp", "ilm") and parse_arm("lp") == ("lp", None)
    assert parse_arm("smm/flm") == ("smm", "flm")
    with pytest.raises(ReprolibError, match="needs a label map"):
        parse_arm("vp")
    with pytest.raises(ReprolibError, match="lp takes no label map; valid form: 'lp'"):
        parse_arm("lp/ilm")
    with pytest.raises(ReprolibError, match="unknown method 'warp'; valid choices: lp, vp, smm"):
        parse_arm("warp/ilm")
    with pytest.raises(ReprolibError, match="valid choices: local, submitit"):
        run_sweep([], executor="ray")
    with pytest.raises(ReprolibError, match="method"):
        build_grid(load_profile("smoke", methods=["warp/ilm"]))


@pytest.mark.slow
def test_sweep_killed_midway_resumes_without_losing_or_duplicating_runs(tmp_path: Path) -> None:
    results = tmp_path / "runs"
    results.mkdir()
    script = tmp_path / "sweep_script.py"
    script.write_text(SWEEP_SCRIPT)
    expected = len(_grid(results))
    process = subprocess.Popen([sys.executable, str(script), str(results)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(results.glob("*.json"))) < expected // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(results.glob("*.json")))
    assert 0 < done_before < expected, "the kill must land midway through the sweep"

    rerun = subprocess.run([sys.executable, str(script), str(results)], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    records = sorted(p for p in results.glob("*.json") if not p.name.endswith(".failed.json"))
    assert len(records) == expected
    assert all(json.loads(p.read_text())["id"] == p.stem for p in records)   # every record whole
    assert not [p for p in results.iterdir() if p.suffix != ".json"]       # no partial temp file
    log = (tmp_path / "executions.log").read_text().split()
    done = Counter(log[i + 1] for i in range(0, len(log), 2) if log[i] == "done")
    assert set(done) == {p.stem for p in records} and max(done.values()) == 1   # each run written once
    started = Counter(log[i + 1] for i in range(0, len(log), 2) if log[i] == "start")
    assert sum(started.values()) - len(records) <= 1   # at most the run in flight at the kill ran twice


@pytest.mark.slow
def test_submitit_local_executor_writes_the_same_records(tmp_path: Path) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    namespace: dict = {}
    exec(compile(RUNNER, "fake_runner", "exec"), namespace)
    fake_run = namespace["fake_run"]
    local_dir, submitit_dir = tmp_path / "local" / "runs", tmp_path / "submitit" / "runs"
    local_dir.mkdir(parents=True)
    submitit_dir.mkdir(parents=True)
    configs = _grid(local_dir)[:3]
    local = run_sweep(configs, runner=fake_run, verbose=False).records
    assert cloudpickle is not None   # fake_run lives in no module: cloudpickle ships it by value
    remote = run_sweep([c.replace(results_path=str(submitit_dir)) for c in configs], executor="submitit",
                       runner=fake_run, submitit=SubmititOptions(cluster="local", folder=tmp_path / "logs"),
                       verbose=False).records
    assert [r["id"] for r in remote] == [r["id"] for r in local]
    assert sorted(p.name for p in submitit_dir.glob("*.json")) == sorted(p.name for p in local_dir.glob("*.json"))
    again = run_sweep([c.replace(results_path=str(submitit_dir)) for c in configs], runner=fake_run,
                      verbose=False).records
    assert [r["id"] for r in again] == [r["id"] for r in local]
    assert (tmp_path / "submitit" / "executions.log").read_text().count("done") == 3


# A runner that fails one config (the dense 5-shot seed-2 vp run) and otherwise behaves like fake_run.
FAILING_RUNNER = RUNNER + textwrap.dedent('''
    from reprolib.errors import ReprolibError

    def failing_run(cfg):
        if cfg.n_shot == 5 and cfg.seed == 2 and cfg.method == "vp" and cfg.network == "dense":
            raise ReprolibError(f"n_shot {cfg.n_shot} is too big for this test; valid choices: 1")
        return fake_run(cfg)
''')


def _failing_runner():
    namespace: dict = {}
    exec(compile(FAILING_RUNNER, "failing_runner", "exec"), namespace)
    return namespace["failing_run"], namespace["fake_run"]


def _failure_files(results: Path) -> list[str]:
    return sorted(p.name for p in results.iterdir() if p.name.endswith((".failed.json", ".traceback.txt")))


def _check_one_failure(summary, results: Path, n_configs: int) -> None:
    assert not summary.ok and len(summary.records) == n_configs - 1 and len(summary.failures) == 1
    failure = summary.failures[0]
    assert failure.error == "ReprolibError: n_shot 5 is too big for this test; valid choices: 1"
    assert failure.line().endswith("5-shot seed 2: " + failure.error) and " vp/" in failure.line()
    record = json.loads(failure.path.read_text())
    assert record["status"] == "failed" and record["error"] == failure.error
    assert record["config"]["n_shot"] == 5 and record["config"]["seed"] == 2
    traceback_text = (results / record["traceback"]).read_text()
    assert "Traceback" in traceback_text and "failing_run" in traceback_text
    finished = [p for p in results.glob("*.json") if not p.name.endswith(".failed.json")]
    assert len(finished) == n_configs - 1


def test_a_failing_run_leaves_a_failure_record_and_the_sweep_goes_on(tmp_path: Path, capsys) -> None:
    results = tmp_path / "runs"
    results.mkdir()
    configs = _grid(results)
    failing_run, fake_run = _failing_runner()
    summary = run_sweep(configs, runner=failing_run)
    _check_one_failure(summary, results, len(configs))
    out = capsys.readouterr().out
    assert f"1 of {len(configs)} runs failed" in out and summary.failures[0].line() in out
    assert len(_failure_files(results)) == 2
    again = run_sweep(configs, runner=fake_run, verbose=False)   # the rerun retries the failed run only
    assert again.ok and len(again.records) == len(configs)
    assert _failure_files(results) == []                          # success replaced the failure record
    log = (tmp_path / "executions.log").read_text().split()
    assert log.count("done") == len(configs)


def test_failures_with_worker_processes(tmp_path: Path) -> None:
    # The runner must be importable in spawned workers: write it as a module on the path.
    (tmp_path / "failing_runner_module.py").write_text(FAILING_RUNNER)
    sys.path.insert(0, str(tmp_path))
    try:
        from failing_runner_module import failing_run
        results = tmp_path / "runs"
        results.mkdir()
        configs = [c for c in _grid(results) if c.n_shot == 5 and c.network == "dense"]   # spawn keeps sys.path
        assert any(c.method == "vp" and c.seed == 2 for c in configs)
        summary = run_sweep(configs, runner=failing_run, workers=2, verbose=False)
        n_failing = sum(c.method == "vp" and c.seed == 2 for c in configs)
        assert len(summary.failures) == n_failing and len(summary.records) == len(configs) - n_failing
        assert all("failing_run" in (results / json.loads(f.path.read_text())["traceback"]).read_text()
                   for f in summary.failures)
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.slow
def test_failures_through_submitit_local_executor(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    failing_run, _ = _failing_runner()
    results = tmp_path / "runs"
    results.mkdir()
    configs = [c for c in _grid(results) if c.n_shot == 5 and c.method == "vp"][:3]
    assert [c.seed for c in configs].count(2) == 1
    summary = run_sweep(configs, executor="submitit", runner=failing_run,
                        submitit=SubmititOptions(cluster="local", folder=tmp_path / "logs"), verbose=False)
    _check_one_failure(summary, results, len(configs))


def test_a_real_impossible_config_fails_without_ending_the_sweep(tmp_path: Path) -> None:
    """run_transfer itself raises (select_best_on_val with one image per class) before any training."""
    from smoke_runs import smoke_with_dense_model

    smoke_with_dense_model()   # the run's network exists
    results = tmp_path / "runs"
    impossible = _grid(results)[0].replace(n_shot=1, select_best_on_val=True)
    failing_run, _ = _failing_runner()
    fine = _grid(results)[1]
    summary = run_sweep([impossible, fine], verbose=False, runner=_RealThenFake(failing_run))
    assert len(summary.records) == 1 and len(summary.failures) == 1
    assert summary.failures[0].error.startswith("ReprolibError: select_best_on_val needs at least 2 training")
    assert summary.failures[0].path.parent == results


class _RealThenFake:
    """run_transfer for the configs that select on validation, the fake runner for the rest."""

    def __init__(self, fake):
        self.fake = fake

    def __call__(self, cfg):
        from reprolib.transfer import run_transfer
        return run_transfer(cfg) if cfg.select_best_on_val else self.fake(cfg)


def test_keyboard_interrupt_stops_the_sweep_and_keeps_finished_runs(tmp_path: Path) -> None:
    results = tmp_path / "runs"
    results.mkdir()
    configs = _grid(results)[:3]
    _, fake_run = _failing_runner()
    calls = []

    def interrupted(cfg):
        calls.append(cfg)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fake_run(cfg)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, runner=interrupted, verbose=False)
    assert len(calls) == 2 and len(list(results.glob("*.json"))) == 1 and _failure_files(results) == []


def test_cli_sweep_exits_1_when_a_run_failed(tmp_path: Path, monkeypatch, capsys) -> None:
    import reprolib.sweep.runner as sweep_module
    from reprolib.cli import main

    _, fake_run = _failing_runner()

    def failing_run(cfg):
        if cfg.method == "vp":
            raise ValueError("a bug in one run\nsecond line")
        return fake_run(cfg)

    results = tmp_path / "runs"
    real_build = sweep_module.build_grid
    monkeypatch.setattr(sweep_module, "build_grid", lambda p: [c.replace(results_path=str(results))
                                                               for c in real_build(p) if c.n_shot == 5][:6])
    monkeypatch.setattr(sweep_module, "run_transfer", failing_run)
    assert main(["sweep", "--profile", "smoke", "--no-ledger", "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "3 of 6 runs failed" in out and "vp/ilm dense 5-shot seed 1: ValueError: a bug in one run\n" in out


def test_progress_labels_name_one_shot_networks_as_what_they_are() -> None:
    """imagenet-lite's grid asks for "imp" levels; its pretrained backbone is pruned once at load."""
    from reprolib.sweep.runner import _describe

    lite = {c.level: _describe(c) for c in build_grid(load_profile("imagenet-lite")) if c.n_shot == 5 and c.seed == 1
            and c.target == "digits" and c.method == "lp"}
    assert lite == {0: "digits lp dense 5-shot seed 1", 2: "digits lp one-shot magnitude L2 5-shot seed 1",
                    4: "digits lp one-shot magnitude L4 5-shot seed 1"}
    # the embedded backbone's levels are IMP tickets made here: "target arm KIND Lx shots seed s"
    main_grid = build_grid(load_profile("embedded", replicates=1, subgrids=[]))
    labels = {" ".join(_describe(c).split()[2:4]) for c in main_grid if c.network != "dense"}
    assert labels == {"imp L2", "imp L4", "imp L6", "imp L8", "magnitude L8", "random L8"}
    lost = dataclasses.replace(main_grid[-1], profile="no-such-profile")
    assert _describe(lost) == "glyphs full/ilm random L8 full seed 3"   # a failure line never fails


def test_a_stale_lock_is_taken_over_with_a_line_that_stays_out_of_saved_notebooks(tmp_path: Path, monkeypatch,
                                                                                 capsys) -> None:
    """Under `reprolib notebooks` (its progress side channel set) the takeover line goes to the runner's
    terminal, not into the kernel's output that the executed notebook saves; the lock is re-entrant."""
    import json
    import socket
    import subprocess
    import sys

    from reprolib.progress import PROGRESS_ENV
    from reprolib.sweep.lock import LOCK_NAME, sweep_lock

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / LOCK_NAME).write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(), "started": "then"}))
    channel = tmp_path / "progress.txt"
    monkeypatch.setenv(PROGRESS_ENV, str(channel))
    with sweep_lock(runs) as lock, sweep_lock(runs):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not (runs / LOCK_NAME).exists()
    assert capsys.readouterr().out == ""
    assert channel.read_text() == f"taking over the stale sweep lock of pid {dead_pid} on {socket.gethostname()!r} " \
                                  "(that process is gone)\n"


def test_a_run_that_failed_before_its_config_resolved_keeps_no_failure_record_once_it_finishes(tmp_path: Path) -> None:
    """A missing imported ticket fails the run before its id exists (failure record `config-<hash>`);
    once the ticket is imported the run resolves, runs under its own id, and the old record goes."""
    import torch

    from reprolib.records import is_failure_file
    from reprolib.sparsity import imported
    from reprolib.sparsity.load import build_network
    from reprolib.transfer import TransferConfig

    name = f"late-{tmp_path.name}"[-40:]
    config = TransferConfig(profile="smoke", target="digits", method="lp", network="LT", kind="imported", level=1,
                            pretrained_dir=name, n_shot=2, seed=1, epochs=1, device="cpu",
                            results_path=str(tmp_path / "runs"), progress=False)
    failed = run_sweep([config], verbose=False)
    assert not failed.ok and f"no imported ticket {name!r}" in failed.failures[0].error
    assert [p.name[:7] for p in (tmp_path / "runs").iterdir() if is_failure_file(p)] == ["config-"]
    file = tmp_path / "ticket.pth"
    torch.save(build_network("small_resnet").state_dict(), file)
    imported.import_ticket(file, name, load_profile("smoke").path("artifacts"), "small_resnet")
    done = run_sweep([config], verbose=False)
    assert done.ok and len(done.records) == 1
    left = sorted(p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith(done.records[0]["id"]))
    assert left == [], left                                  # no failure record, no traceback, nothing stale


def test_preparing_a_profile_s_data_offline_names_the_download_s_failure(tmp_path: Path) -> None:
    """`make sweep`'s first step on a machine that cannot download: the real cause, not a hint to
    use a profile that downloads (paper-headline does). Offline is a proxy nothing listens on."""
    repo = Path(__file__).resolve().parent.parent
    unreachable = "http://127.0.0.1:9"
    env = {**os.environ, "REPROLIB_HOME": str(tmp_path), "https_proxy": unreachable, "http_proxy": unreachable,
           "HTTPS_PROXY": unreachable, "HTTP_PROXY": unreachable, "no_proxy": "", "NO_PROXY": ""}
    shown = subprocess.run([sys.executable, "-m", "reprolib", "data", "--prepare", "--profile", "paper-headline"],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert shown.returncode == 2 and shown.stderr.count("\n") == 1, shown.stderr
    assert shown.stderr.startswith("error: profile paper-headline needs cifar10, flowers102, not under ")
    assert "and the download failed: could not download cifar10 into " in shown.stderr
    assert "Connection refused" in shown.stderr and "valid choices" not in shown.stderr
