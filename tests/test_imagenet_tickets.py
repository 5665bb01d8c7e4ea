"""ImageNet-side tickets on CPU: a tiny synthetic ImageNet folder (train/ and val/), the paper
dry run's resnet18 with random "ImageNet" weights, GMP with fine-tuning under torchrun with
2 processes on gloo, then the top-1 of every network stored in its report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reprolib.config import load_profile
from reprolib.dryrun import write_dryrun_root

REPO = Path(__file__).resolve().parent.parent
PROFILE = "paper-dryrun"


def write_tiny_imagenet(root: Path, classes: int = 3, train: int = 4, val: int = 2) -> Path:
    """ImageFolder layout: root/{train,val}/n0000000c/*.png, a class-dependent colour plus noise."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.clip(rng.normal(60 + 60 * c, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{split}_{c}_{i}.png")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def imagenet_home(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    profile = load_profile(PROFILE, baselines=["random"])   # the dry run itself leaves random pruning out (time)
    write_dryrun_root(profile.path("data_root"), datasets=[], archs=[profile.backbone])
    return tmp_path, write_tiny_imagenet(tmp_path / "imagenet"), profile


def test_gmp_on_two_gloo_processes_then_evaluate(imagenet_home):
    home, imagenet, profile = imagenet_home
    env = {**os.environ, "REPROLIB_HOME": str(home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), "-m", "reprolib", "tickets", "prune", "--imagenet", str(imagenet), "--levels", "0-2",
               "--profile", PROFILE]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=home, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tickets = profile.path("artifacts") / "tickets" / "imp"
    reports = [json.loads((tickets / f"level_{lv:02d}" / "sparsity.json").read_text()) for lv in range(3)]
    for level, report in enumerate(reports):
        assert report["provenance"] == "here" and report["made_on"] == "imagenet"
        assert report["density"] == pytest.approx(0.8 ** level, abs=1e-4)
        assert 0.0 <= report["upstream_test_accuracy"] <= 1.0
        assert report["upstream_measured_on"].endswith("(6 images)")   # both shards counted once
        assert report["imagenet_recipe"]["name"] == "dryrun-gmp"
    assert "imp level  2: density 0.6400" in done.stdout

    from reprolib.sparsity import masks as M
    from reprolib.sparsity.network import get_network

    backbone, info = get_network(profile, "LT", "imp", 2)    # the ImageNet-made level replaces one-shot pruning
    assert (info.kind, info.provenance) == ("imp", "here")
    assert info.upstream_accuracy == reports[2]["upstream_test_accuracy"]
    mask = M.load_tensors(tickets / "level_02" / "mask.pth")
    weight = backbone.net.state_dict()["layer1.0.conv1.weight"]
    assert bool((weight[mask["layer1.0.conv1.weight"] == 0] == 0).all())   # fine-tuning kept the mask
    level1 = M.load_tensors(tickets / "level_01" / "mask.pth")
    assert all(bool((mask[k] <= level1[k]).all()) for k in mask)          # nested masks

    from reprolib.sparsity.imagenet_prune import prune_on_imagenet, submit_pruning

    again = prune_on_imagenet(profile, imagenet, [0, 1, 2])
    assert [r["status"] for r in again] == ["existing"] * 3                   # resumable per level
    job = submit_pruning(PROFILE, imagenet, [2], home / "submitit", cluster="debug")   # submitit's in-process executor
    assert [(r["level"], r["status"]) for r in job.result()] == [(2, "existing")]

    from reprolib.sparsity.imagenet import evaluate_tickets
    from reprolib.sparsity.tickets import import_profile_tickets

    assert [r["status"] for r in import_profile_tickets(profile)] == ["imported"]   # the dry run's stand-in
    rows = evaluate_tickets(profile, imagenet, max_images=6)
    assert len(rows) == 4 and [r["images"] for r in rows] == [6] * 4   # dense, imp L2, random L2, imported
    artifacts = profile.path("artifacts") / "tickets"
    random_report = json.loads((artifacts / "random/level_02/sparsity.json").read_text())
    assert random_report["provenance"] == "oneshot" and 0 <= random_report["upstream_test_accuracy"] <= 1
    imported_report = json.loads((artifacts / "imported/dryrun-magnitude80/sparsity.json").read_text())
    assert imported_report["upstream_measured_on"].endswith("(6 images)")
    assert get_network(profile, "LT", "imported", 1, "dryrun-magnitude80")[1].upstream_accuracy == \
        imported_report["upstream_test_accuracy"]


def test_missing_imagenet_folder_is_one_line(imagenet_home, tmp_path):
    from reprolib.errors import ReprolibError
    from reprolib.sparsity.imagenet_prune import prune_on_imagenet

    _, _, profile = imagenet_home
    with pytest.raises(ReprolibError, match="missing ImageNet folder .*expected .*train and .*val"):
        prune_on_imagenet(profile, tmp_path / "nowhere", [0])
