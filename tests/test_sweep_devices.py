"""Local multi-GPU sweep on the CPU with a fake device list: each worker sees exactly its device,
every run is done exactly once, a killed worker's run is retried; longest-first scheduling on the
cost model; device and --runs-per-gpu bad input."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from reprolib.sweep import scheduling
from reprolib.config import load_profile
from reprolib.sweep.cost import RunTimer, throughput
from reprolib.errors import ReprolibError
from reprolib.sweep.runner import build_grid, run_sweep
from sweep_fakes import dying_run, fake_run


def _grid(results: Path):
    return [c.replace(results_path=str(results)) for c in build_grid(load_profile("smoke", seeds=[1, 2]))]


def _log(results: Path) -> list[list[str]]:
    return [line.split() for line in (results.parent / "executions.log").read_text().splitlines()]


def test_each_worker_sees_exactly_its_device_every_run_is_done_once_and_a_killed_workers_run_retried(
        tmp_path: Path, capsys) -> None:
    results = tmp_path / "runs"
    configs = _grid(results)
    summary = run_sweep(configs, runner=dying_run, devices=["0", "2", "3"])
    assert summary.ok and len(summary.records) == len(configs)
    assert all((results / f"{r['id']}.json").is_file() for r in summary.records)
    died = int((tmp_path / "died-once").read_text())                    # dying_run killed its worker once
    assert f"(pid {died}) died with exit code -9" in capsys.readouterr().out
    log = _log(results)
    done = Counter(run_id for event, run_id, _, _ in log if event == "done")
    assert len(done) == len(configs) and set(done.values()) == {1}     # each run exactly once
    started = Counter(run_id for event, run_id, _, _ in log if event == "start")
    assert sum(started.values()) == len(configs)                        # the killed run died before its log line
    devices_of_pid = defaultdict(set)
    for _, _, pid, device in log:
        devices_of_pid[pid].add(device)
    assert all(len(seen) == 1 for seen in devices_of_pid.values())   # a worker sees one device, always
    assert {d for seen in devices_of_pid.values() for d in seen} == {"0", "2", "3"}
    assert len(devices_of_pid) in (3, 4)                                # 3 workers (+ the killed one's successor)
    assert not (results / ".sweep.lock").exists()


def test_longest_first_balances_devices() -> None:
    schedule = scheduling.lpt([5, 4, 3, 3, 2, 2, 1], 3)
    assert schedule.makespan == 7 and sorted(schedule.busy) == [6, 7, 7]
    assert scheduling.lpt([], 2).makespan == 0
    order = scheduling.longest_first(["a", "bbb", "cc"], len)
    assert order == [1, 2, 0]


def test_paper_grid_on_eight_gpus_takes_at_most_a_seventh_of_one_gpus_wall_clock() -> None:
    profile = load_profile("paper")
    configs = build_grid(profile)
    timer = RunTimer(profile, throughput(profile.backbone, 3000.0, 1000.0))
    one = scheduling.wall_clock(configs, timer.seconds, 1)
    node = scheduling.wall_clock(configs, timer.seconds, 8)
    assert sum(timer.seconds(c) for c in configs) == pytest.approx(one)
    assert node <= one / 7
    assert node >= one / 8 - 1e-6 and node >= max(timer.seconds(c) for c in configs)


def test_bad_devices_and_runs_per_gpu_are_one_line_errors() -> None:
    assert scheduling.parse_devices("0,2,3", 4) == ["0", "2", "3"]
    assert scheduling.parse_devices("all", 2) == ["0", "1"]
    assert scheduling.parse_devices("0,1,2,3,4,5,6,7", None) == [str(i) for i in range(8)]
    with pytest.raises(ReprolibError, match="unknown device id '5'.*valid choices: all or ids from 0..3"):
        scheduling.parse_devices("0,5", 4)
    with pytest.raises(ReprolibError, match="unknown device id 'gpu1'"):
        scheduling.parse_devices("gpu1", 4)
    with pytest.raises(ReprolibError, match="names a device twice"):
        scheduling.parse_devices("1,1", 4)
    with pytest.raises(ReprolibError, match="no CUDA GPU is visible"):
        scheduling.parse_devices("all", 0)
    assert scheduling.check_runs_per_gpu(4, 8, cpus=64) == 4
    with pytest.raises(ReprolibError, match="--runs-per-gpu 9 does not fit: 8 GPU.*valid choices: 1..8"):
        scheduling.check_runs_per_gpu(9, 8, cpus=64)


def test_cli_dry_run_shows_the_node_speed_up_and_refuses_bad_devices(capsys) -> None:
    from reprolib.cli import main

    assert main(["sweep", "--profile", "paper", "--dry-run", "--devices", "0,1,2,3,4,5,6,7",
                 "--only", "target=cifar10,method=lp"]) == 0
    out = capsys.readouterr().out
    assert "8 GPU(s) x 1 run(s) each" in out
    from reprolib.config import load_profile
    from reprolib.sweep.grid import build_grid

    # 6 distinct networks (magnitude L8 is one-shot L8) x (4 few-shot sizes x 3 seeds + full data x 3 seeds),
    # and claim 1's seeds 4-16 of LP on the dense model and level 8 (1 and 10 shots, full data)
    picked = [c for c in build_grid(load_profile("paper")) if c.target == "cifar10" and c.method == "lp"]
    assert len(picked) == 6 * (4 * 3 + 3) + 2 * 3 * 13 and f"\n{len(picked)} runs\n" in out
    assert main(["sweep", "--profile", "smoke", "--devices", "0"]) == 2
    assert "needs a CUDA profile" in capsys.readouterr().err
    assert main(["sweep", "--profile", "smoke", "--dry-run", "--only", "colour=red"]) == 2
    assert "unknown --only key 'colour'; valid choices: target, method" in capsys.readouterr().err


def test_prompt_runs_are_grouped_by_default_on_cuda_only(monkeypatch) -> None:
    import reprolib.sweep.runner as sweep
    from reprolib.transfer.grouped import MAX_RUNS

    configs = build_grid(load_profile("smoke"))
    assert sweep._group_size(configs, None) == 1                    # CPU: one run at a time, records unchanged
    assert sweep._group_size(configs, 4) == 4
    monkeypatch.setattr(sweep, "resolve_device", lambda device: "cuda")
    assert sweep._group_size(configs, None) == MAX_RUNS
    with pytest.raises(ReprolibError, match="group_runs must be >= 1"):
        sweep._group_size(configs, 0)
