"""Size before you spend: the dry run's image counts, GPU-hours and capped few-shot cells."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from reprolib.sweep import cost
from reprolib.cli import main
from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.protocols import get_protocol
from reprolib.sweep.runner import build_grid


def _config(target: str, method: str, label_map: str | None, n_shot: int):
    return SimpleNamespace(target=target, method=method, label_map=label_map, n_shot=n_shot, epochs=None)


def test_a_tiny_grid_costs_what_the_hand_count_says() -> None:
    profile = SimpleNamespace(targets=["cifar10", "flowers102"], protocol="rlt")   # 300 OOD images per set
    configs = [_config("cifar10", "vp", "ilm", -1),        # ILM: a mapping pass every epoch
               _config("flowers102", "vp", "flm", 50),     # capped at 10 per class: all 1,020; FLM once
               _config("cifar10", "lp", None, 10)]         # LP: one feature pass over train + test
    # OOD scoring: 300 noise + 300 test images of the other target = 600 forwards per run.
    expected_fwd = (2 * 10_000 + 2 * 50_000 + 600) + (2 * 6_149 + 1_020 + 600) + (100 + 10_000 + 600)
    expected_fwdbwd = 2 * 50_000 + 2 * 1_020
    total = cost.grid_cost(configs, profile, epochs=2)
    assert (total.runs, total.fwd, total.fwdbwd) == (3, expected_fwd, expected_fwdbwd) == (3, 145_218, 102_040)
    assert (total.full_data_fwd, total.full_data_fwdbwd) == (120_600, 100_000)
    rate = cost.Throughput(fwd=3000.0, fwdbwd=1000.0, source="test")
    assert total.hours(rate) == pytest.approx((145_218 / 3000 + 102_040 / 1000) / 3600)
    assert total.hours(rate, full_data_only=True) == pytest.approx((120_600 / 3000 + 100_000 / 1000) / 3600)
    assert total.capped == {("flowers102", 50): ("10", 1)}


def test_the_paper_grid_is_about_1400_gpu_hours_two_thirds_full_data() -> None:
    profile = load_profile("paper", subgrids=[])   # the main grid; claim 1's 16 seeds below
    total = cost.grid_cost(build_grid(profile), profile, get_protocol(profile.protocol).epochs)
    rate = cost.throughput(profile.backbone)   # no bench file in the test home: the stated assumption
    assert "ASSUMED" in rate.source and (rate.fwd, rate.fwdbwd) == (3000.0, 1000.0)
    hours, full = total.hours(rate), total.hours(rate, full_data_only=True)
    # 7 networks named, 6 distinct (magnitude L8 is one-shot L8): 8 x 7 x 6 x (4 x 3 + 3) runs
    assert total.runs == 8 * 7 * 6 * (4 * 3 + 3) == 5040 and 1_350 < hours < 1_450   # 1,413.8 GPU-hours
    assert 0.64 < full / hours < 0.70                                # 67% in full-data runs
    assert {cell: runs for cell, (_, runs) in total.capped.items()} == {
        ("dtd", 50): 126, ("dtd", 100): 126, ("flowers102", 50): 126, ("flowers102", 100): 126,
        ("oxfordpets", 100): 126}
    # the profile's subgrid: LP and VP-ILM, dense and level 8, 1 / 10 shots and full data, seeds 4-16
    assert len(build_grid(load_profile("paper"))) == 5040 + 8 * 2 * 2 * 3 * (16 - 3)


def test_embedded_sizes_come_from_the_data_and_nothing_is_capped() -> None:
    profile = load_profile("embedded")
    sizes = cost.split_sizes("digits", profile)
    assert (sizes.train, sizes.test) == (1437, 360) and sizes.min_per_class > 10
    assert cost.grid_cost(build_grid(profile), profile, 8).capped == {}


def test_throughput_from_the_latest_bench_row_else_the_assumption(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    backbone = load_profile("paper").backbone
    assert "ASSUMED" in cost.throughput(backbone).source
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.md").write_text(
        "# bench\n\n| backbone | pass | images/s | device |\n|---|---|---|---|\n"
        f"| {backbone} | fwd+bwd | 900 | old GPU |\n| {backbone} | fwd | 2,500 | old GPU |\n"
        f"| other | fwd | 1 | x |\n| {backbone} | fwd+bwd | 1,250.5 | new GPU |\n")
    rate = cost.throughput(backbone)
    assert (rate.fwd, rate.fwdbwd) == (2500.0, 1250.5) and "make bench" in rate.source
    assert cost.throughput(backbone, fwd=10.0, fwdbwd=5.0) == cost.Throughput(10.0, 5.0, "given on the command line")
    with pytest.raises(ReprolibError, match="'fast' is not a positive number of images/s"):
        cost.parse_rate("fast")


def test_sweep_dry_run_prints_the_cost(capsys) -> None:
    assert main(["sweep", "--profile", "paper", "--dry-run", "--throughput-fwd", "6000", "--throughput-fwdbwd", "2000",
                 "--only", "seed=1,seed=2,seed=3"]) == 0   # the main grid (the subgrid's seeds 4-16 left out)
    out = capsys.readouterr().out
    assert "5040 runs" in out and "2,908,504,800 images forward+backward, 6,543,403,416 forward only" in out
    assert "GPU-hours: 706.9 in all; full-data runs 475.6 (67%), few-shot runs 231.3" in out
    assert "given on the command line" in out
    assert "capped: flowers102 100-shot (126 runs): smallest training class has 10 images" in out
    assert "capped: oxfordpets 100-shot (126 runs): smallest training class has at most 99 images" in out
