"""Sweep: the grid of a profile, resumable after kill -9, and the submitit path (local executor).

The runs use a cheap runner with run_transfer's contract (hash the config, skip an existing
record, write the record atomically with reprolib.records), so the test exercises the
sweep's resume logic in seconds; test_transfer covers the real runs.
"""

from __future__ import annotations

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
from reprolib.sweep import SubmititOptions, build_grid, parse_arm, run_sweep

RUNNER = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    from reprolib.records import config_hash, record_exists, read_record, write_json_atomic

    def fake_run(cfg, pause=0.0):
        """run_transfer's contract: skip an existing record, else 'train' and write it atomically."""
        hashed = {k: v for k, v in cfg.to_dict().items() if k not in ("results_path", "progress")}
        run_id = config_hash(hashed)
        out = Path(cfg.results_path)
        path = out / f"{run_id}.json"
        if record_exists(path):
            return read_record(path)
        with open(out.parent / "executions.log", "a") as log:
            log.write(f"start {run_id}\\n")
        time.sleep(pause)
        record = {"id": run_id, "config": hashed, "metrics": {"accuracy": 0.5}, "padding": "x" * 200_000}
        write_json_atomic(path, record)
        with open(out.parent / "executions.log", "a") as log:
            log.write(f"done {run_id}\\n")
        return record
''')

SWEEP_SCRIPT = RUNNER + textwrap.dedent('''
    from functools import partial
    from reprolib.config import load_profile
    from reprolib.sweep import build_grid, run_sweep

    results = sys.argv[1]
    configs = [c.replace(results_path=results) for c in build_grid(load_profile("smoke", seeds=[1, 2]))]
    run_sweep(configs, runner=partial(fake_run, pause=0.05))
''')


def _grid(results: Path):
    return [c.replace(results_path=str(results)) for c in build_grid(load_profile("smoke", seeds=[1, 2]))]


def test_grid_covers_targets_arms_tickets_shots_and_seeds() -> None:
    profile = load_profile("embedded", full_data_seeds=[1])   # full-data runs have their own seeds
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
    records = sorted(results.glob("*.json"))
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
    local = run_sweep(configs, runner=fake_run, verbose=False)
    assert cloudpickle is not None   # fake_run lives in no module: cloudpickle ships it by value
    remote = run_sweep([c.replace(results_path=str(submitit_dir)) for c in configs], executor="submitit",
                       runner=fake_run, submitit=SubmititOptions(cluster="local", folder=tmp_path / "logs"),
                       verbose=False)
    assert [r["id"] for r in remote] == [r["id"] for r in local]
    assert sorted(p.name for p in submitit_dir.glob("*.json")) == sorted(p.name for p in local_dir.glob("*.json"))
    again = run_sweep([c.replace(results_path=str(submitit_dir)) for c in configs], runner=fake_run, verbose=False)
    assert [r["id"] for r in again] == [r["id"] for r in local]
    assert (tmp_path / "submitit" / "executions.log").read_text().count("done") == 3
