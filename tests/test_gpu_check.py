"""`make gpu-check` (bench/gpu_check.py) works: its `--quick` form runs every stage on the CPU.

On a GPU the script measures the paper backbone's rates (which the dry run then prices with),
the prompts' training rates, peak device memory of LP, VP, SMM and 16 grouped VP runs, and the
first paper-headline runs on the dry-run data. Here every stage runs at toy size on the CPU with
the paper-dryrun backbone: the same code, so a GPU session only has to run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprolib.config import load_profile
from reprolib.sweep import rates

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"


def _run(tmp_path: Path, *flags: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, REPROLIB_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "results.md"),
                           "--dryrun-root", str(tmp_path / "dryrun"), *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_without_a_gpu_the_full_check_stops_in_one_line(tmp_path):
    done = _run(tmp_path, timeout=120)
    if done.returncode == 0:
        pytest.skip("a CUDA GPU is visible here: the full check ran")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: device 'cuda' requested but no CUDA GPU is visible; valid choices here: auto, cpu"]
    assert not (tmp_path / "results.md").exists() and not (tmp_path / "bench" / "rates.csv").exists()


def test_the_quick_check_runs_every_stage_and_the_dry_run_reads_its_rates(tmp_path, monkeypatch):
    from reprolib.dryrun import write_dryrun_root

    write_dryrun_root(tmp_path / "dryrun", ["cifar10"], [], n_per_class_train=1, n_per_class_test=1)
    done = _run(tmp_path, "--quick")
    assert done.returncode == 0, done.stderr[-2000:]
    section = (tmp_path / "results.md").read_text()
    backbone = load_profile("paper-dryrun").backbone
    assert section.startswith("# reprolib benchmarks\n\n## GPU check (make gpu-check)\n")
    for what in (f"| rate | {backbone} fwd at batch 2, 224 px, float32 |", f"| rate | {backbone} fwd+bwd at batch 2",
                 "| prompt training | vp step", "| prompt training | smm step", "| peak memory | lp, one epoch",
                 "| peak memory | smm/ilm, one epoch", "| peak memory | 2 vp/ilm runs grouped",
                 "exit 0, 2 runs finished", "| headline run | cifar10 lp  1-shot seed 1 | accuracy",
                 "| headline run | cifar10 vp ilm 1-shot seed 1 | accuracy"):
        assert what in section, what
    assert "skipped" not in section
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    measured = rates.measured_rates(backbone, "cpu")
    assert {r["by"] for r in measured.values()} == {"make gpu-check"} and len(measured) == 2
    rate = rates.throughput(backbone, device="cpu")   # what `sweep --dry-run` prices paper-dryrun at here
    assert rate.source.startswith("measured on cpu: ") and rate.fwd == float(measured["fwd"]["images_per_s"]) > 0


def test_a_stage_that_no_longer_fits_the_budget_is_skipped(tmp_path):
    done = _run(tmp_path, "--quick", "--budget", "1", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    section = (tmp_path / "results.md").read_text()
    assert section.count("skipped: ") == 4 and "| headline runs | skipped: " in section and "finished" not in section
