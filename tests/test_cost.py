"""Size before you spend: the dry run's image counts, GPU-hours and capped few-shot cells."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from reprolib.sweep import cost, rates
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
    assert total.runs == 8 * 7 * 6 * (4 * 3 + 3) == 5040 and 1_350 < hours < 1_450   # 1,417.8 GPU-hours
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


def test_throughput_from_the_latest_measured_rates_else_the_assumption(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    backbone = load_profile("paper").backbone
    assumed = cost.throughput(backbone)
    assert "ASSUMED, not measured" in assumed.source and "make gpu-check" in assumed.source
    assert "issue" not in assumed.source and (assumed.fwd, assumed.fwdbwd) == (3000.0, 1000.0)
    row = dict(backbone=backbone, precision="bf16 autocast", batch=128, px=224, by="make gpu-check")
    rates.record_rates([{**row, "pass": "fwd+bwd", "images_per_s": 900, "device": "cuda: Old GPU", "date": "2026-01-01"},
                        {**row, "pass": "fwd", "images_per_s": 2500, "device": "cuda: Old GPU", "date": "2026-01-01",
                         "precision": "float32 (TF32 convolutions)"},
                        {**row, "pass": "fwd", "images_per_s": 1, "device": "cuda: x", "backbone": "other"},
                        {**row, "pass": "fwd+bwd", "images_per_s": 5, "device": "cpu: x86_64", "date": "2026-02-02"}])
    rates.record_rates([{**row, "pass": "fwd+bwd", "images_per_s": 1250.5, "device": "cuda: NVIDIA H100 80GB HBM3",
                         "date": "2026-03-03"}])
    rate = cost.throughput(backbone, device="cuda")   # the last cuda rows: the CPU row prices CPU profiles only
    assert (rate.fwd, rate.fwdbwd) == (2500.0, 1250.5)
    assert rate.source.startswith("measured on cuda: NVIDIA H100 80GB HBM3 on 2026-01-01 and 2026-03-03 by make gpu-check")
    assert "forward float32 (TF32 convolutions), forward+backward bf16 autocast" in rate.source
    assert "ASSUMED" in cost.throughput(backbone, device="cpu").source   # a CPU fwd+bwd alone is not a pair
    assert cost.throughput(backbone, device="cpu").fwdbwd == 5.0
    assert cost.throughput(backbone, fwd=10.0, fwdbwd=5.0) == cost.Throughput(10.0, 5.0, "given on the command line")
    with pytest.raises(ReprolibError, match="throughput is 'fast'; valid: a number"):
        cost.parse_rate("fast")
    with pytest.raises(ReprolibError, match="--throughput-fwd is 'inf'; valid: a finite number"):
        cost.parse_rate("inf", "--throughput-fwd")
    assert cost.parse_rate("1,250.5") == 1250.5


def test_smm_pays_for_its_mask_generator_from_its_layer_sizes() -> None:
    """5 convolutions (3->8->16->32->64 at 224, 112, 56, 28 px, then 64->3 at 28 px) are 55.5 M
    multiply-accumulates against ResNet-50's 4.09 G: 1.36% of a forward; forward+backward also
    computes their weight gradients (about twice), against the backbone's two input-side passes."""
    from reprolib.models.flops import backbone_macs

    fwd, fwdbwd = backbone_macs("resnet50")
    assert round(fwd / 1e9, 2) == 4.09 and fwdbwd == 2 * fwd   # frozen: the backward computes grad-input only
    convs = (224**2 * 3 * 8 + 112**2 * 8 * 16 + 56**2 * 16 * 32 + 28**2 * 32 * 64 + 28**2 * 64 * 3) * 9
    assert convs == 55_544_832
    share_fwd, share_fwdbwd = cost.own_share("smm", "resnet50", "cifar10")
    assert share_fwd == pytest.approx(convs / fwd, rel=1e-3) and 0.018 < share_fwdbwd < 0.02
    assert cost.own_share("vp", "resnet50", "cifar10") == cost.own_share("lp", "resnet50", "cifar10") == (0.0, 0.0)
    profile = load_profile("paper")
    config = _config("cifar10", "smm", "ilm", -1)
    timer = cost.RunTimer(profile, cost.Throughput(3000.0, 1000.0, "test"))
    plain = timer.seconds(_config("cifar10", "full", "ilm", -1))   # the same images, no layers in the prompt
    assert 1 + share_fwd < timer.seconds(config) / plain < 1 + share_fwdbwd   # a mean of the two shares
    total = cost.grid_cost([config], profile, epochs=100)
    assert total.own_fwdbwd == pytest.approx(100 * 50_000 * share_fwdbwd) and total.own_fwd > 0


def test_sweep_dry_run_prints_the_cost(capsys) -> None:
    assert main(["sweep", "--profile", "paper", "--dry-run", "--throughput-fwd", "6000", "--throughput-fwdbwd", "2000",
                 "--only", "seed=1,seed=2,seed=3"]) == 0   # the main grid (the subgrid's seeds 4-16 left out)
    out = capsys.readouterr().out
    assert "5040 runs" in out and "2,908,504,800 images forward+backward, 6,543,403,416 forward only" in out
    assert "GPU-hours: 708.9 in all; full-data runs 477.0 (67%), few-shot runs 231.9" in out
    # SMM is one of 6 prompt arms with the same training images: its generator adds 1.905% of those
    smm_fwdbwd = 2_908_504_800 // 6 * cost.own_share("smm", "resnet50", "cifar10")[1]
    assert f"as many multiply-accumulates as {smm_fwdbwd:,.0f} backbone images forward+backward" in out
    assert "as many multiply-accumulates as 9,234,417 backbone images forward+backward" in out
    assert "given on the command line" in out
    assert "capped: flowers102 100-shot (126 runs): smallest training class has 10 images" in out
    assert "capped: oxfordpets 100-shot (126 runs): smallest training class has at most 99 images" in out
