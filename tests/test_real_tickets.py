"""Published sparse checkpoints: their file formats, `tickets import` / `fetch`, provenance.

Each format is a synthetic file built like the published one (random weights, the real key
names and shapes): exact zeros in a dense state dict with STR / IST-DASLab's "module."
prefix under "state_dict", sparseml / SparseZoo key names, STR's sparseThreshold layers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.sparsity import catalog, imported, keymaps
from reprolib.sparsity import masks as M
from reprolib.sparsity.load import build_network, read_ticket
from reprolib.sparsity.network import get_network

REPO = Path(__file__).resolve().parent.parent
KEEP = 0.25   # kept fraction of each conv / linear weight in the synthetic files


def zeros_state(arch: str, keep: float = KEEP, seed: int = 0) -> tuple[dict, dict]:
    """(state dict with exact zeros, expected kept counts {name: (kept, total)}) of a random `arch`."""
    torch.manual_seed(seed)
    net = build_network(arch)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    counts = {}
    for name in M.prunable_names(net, exclude=()):
        w = state[name]
        n_keep = round(keep * w.numel())
        order = w.abs().flatten().argsort(descending=True)
        flat = torch.zeros(w.numel())
        flat[order[:n_keep]] = 1.0
        state[name] = w * flat.view_as(w)
        counts[name] = (n_keep, w.numel())
    return state, counts


def to_sparseml(state: dict) -> dict:
    """torchvision ResNet keys -> sparseml's (the inverse of keymaps, written independently)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "conv1":
            new = "input.conv." + ".".join(parts[1:])
        elif parts[0] == "bn1":
            new = "input.bn." + ".".join(parts[1:])
        elif parts[0] == "fc":
            new = "classifier.fc." + ".".join(parts[1:])
        else:
            section, block = int(parts[0][len("layer"):]) - 1, parts[1]
            rest = parts[2:]
            if rest[0] == "downsample":
                rest = ["identity", {"0": "conv", "1": "bn"}[rest[1]], *rest[2:]]
            new = ".".join(["sections", str(section), block, *rest])
        out[new] = value
    return out


def expected_density(counts: dict) -> float:
    return sum(k for k, _ in counts.values()) / sum(t for _, t in counts.values())


def test_dense_state_dict_with_exact_zeros_and_module_prefix(tmp_path):
    state, counts = zeros_state("resnet18")
    file = tmp_path / "model_best.pth"
    torch.save({"epoch": 100, "state_dict": {f"module.{k}": v for k, v in state.items()}}, file)
    ticket = read_ticket(file, "resnet18", mask="zeros")
    assert ticket.format == "zeros" and ticket.key_naming is None
    assert ticket.density == pytest.approx(expected_density(counts), abs=1e-9)
    body = {k: v for k, v in counts.items() if k.startswith("layer")}   # RLT: convs except the stem, no fc
    assert ticket.density_rlt == pytest.approx(expected_density(body), abs=1e-9)
    assert ticket.measured_density == ticket.density and ticket.checkpoint_was_masked
    assert torch.equal(ticket.net.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    with pytest.raises(ReprolibError, match="holds no mask"):   # without mask="zeros" nothing is assumed
        read_ticket(file, "resnet18")


def test_sparseml_key_names_map_onto_torchvision(tmp_path):
    state, counts = zeros_state("resnet50", seed=1)
    file = tmp_path / "sparsezoo-resnet50.pth"
    torch.save({"state_dict": to_sparseml(state)}, file)
    assert "sections.0.0.identity.conv.weight" in to_sparseml(state)
    ticket = read_ticket(file, "resnet50", mask="zeros")
    assert ticket.key_naming == "sparseml"
    assert ticket.density == pytest.approx(expected_density(counts), abs=1e-9)
    loaded = ticket.net.state_dict()
    for key in ("conv1.weight", "layer2.0.downsample.0.weight", "layer4.2.bn3.running_var", "fc.bias"):
        assert torch.equal(loaded[key], state[key]), key


def test_str_soft_threshold_layers():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3)
    s = torch.tensor([-1.0])   # sigmoid(-1) = 0.269: |w| below it becomes exactly zero
    out = keymaps.apply_str_thresholds({"layer1.0.conv1.weight": w, "layer1.0.conv1.sparseThreshold": s})
    assert list(out) == ["layer1.0.conv1.weight"]
    effective = out["layer1.0.conv1.weight"]
    threshold = torch.sigmoid(s)
    assert torch.equal(effective == 0, w.abs() <= threshold)
    kept = w.abs() > threshold
    assert torch.allclose(effective[kept], (w.sign() * (w.abs() - threshold))[kept])


def test_import_writes_our_layout_and_runs_as_an_imported_ticket(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    profile = load_profile("paper-dryrun")
    state, counts = zeros_state("resnet18", seed=2)
    file = tmp_path / "gmp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, file)
    report = imported.import_ticket(file, "gmp75", profile.path("artifacts"), "resnet18", source="test file")
    assert report["status"] == "imported" and report["provenance"] == "imported"
    assert report["density"] == pytest.approx(expected_density(counts), abs=1e-9)
    assert report["checkpoint_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert report["upstream_test_accuracy"] is None          # never copied from a paper
    assert imported.import_ticket(file, "gmp75", profile.path("artifacts"), "resnet18")["status"] == "existing"
    other = tmp_path / "other.pth"
    torch.save(zeros_state("resnet18", seed=3)[0], other)
    with pytest.raises(ReprolibError, match="already exists"):
        imported.import_ticket(other, "gmp75", profile.path("artifacts"), "resnet18")
    backbone, info = get_network(profile, "LT", "imported", 1, "gmp75")
    assert (info.kind, info.provenance, info.source) == ("imported", "imported", "test file")
    assert info.density == pytest.approx(report["density"]) and info.upstream_accuracy is None
    assert info.record_fields()["provenance"] == "imported"
    assert float((backbone.net.layer1[0].conv1.weight == 0).float().mean()) == pytest.approx(1 - KEEP, abs=1e-3)


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "REPROLIB_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "reprolib", "tickets", *args], capture_output=True, text=True,
                          env=env, cwd=home, timeout=300)


def test_cli_import_and_fetch_from_a_file_address(tmp_path):
    state, counts = zeros_state("resnet50", seed=4)
    file = tmp_path / "str-dense.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, file)
    checksum = hashlib.sha256(file.read_bytes()).hexdigest()
    done = _cli(["import", str(file), "--name", "mine", "--profile", "paper"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mine: imported" in done.stdout and f"density {expected_density(counts):.4f}" in done.stdout
    address = file.resolve().as_uri()
    done = _cli(["fetch", "str-resnet50-81", "--url", address, "--sha256", checksum, "--profile", "paper"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout and "published top-1 0.7612" in done.stdout
    report = json.loads((tmp_path / "artifacts/paper/tickets/imported/str-resnet50-81/sparsity.json").read_text())
    assert report["published_top1"] == 0.7612 and report["upstream_test_accuracy"] is None
    bad = _cli(["fetch", "str-resnet50-90", "--url", address, "--sha256", "0" * 64, "--profile", "paper"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "checksum mismatch" in bad.stderr
    assert not (tmp_path / "artifacts/paper/tickets/imported/str-resnet50-90").exists()
    assert not list((tmp_path / "artifacts/paper/tickets/downloads").glob("*90*"))   # nothing half-written


def test_fetch_offline_and_without_an_address_fail_in_one_line(tmp_path):
    offline = _cli(["fetch", "str-resnet50-95", "--url", "https://127.0.0.1:9/none.pth", "--profile", "paper"], tmp_path)
    assert offline.returncode == 2 and offline.stderr.count("\n") == 1
    assert offline.stderr.startswith("error: cannot download https://127.0.0.1:9/none.pth")
    no_url = _cli(["fetch", "str-resnet50-95", "--profile", "paper"], tmp_path)
    assert no_url.returncode == 2 and "no direct download address" in no_url.stderr
    unknown = _cli(["fetch", "nope", "--profile", "paper"], tmp_path)
    assert unknown.returncode == 2 and "str-resnet50-81" in unknown.stderr   # names the valid choices
    tf = _cli(["fetch", "sos-magnitude-resnet50-80", "--profile", "paper"], tmp_path)
    assert tf.returncode == 2 and "TensorFlow" in tf.stderr
    listed = _cli(["list", "--profile", "paper"], tmp_path)
    assert listed.returncode == 0 and "str-resnet50-98" in listed.stdout and "61.46%" in listed.stdout
    assert "(none)" in listed.stdout   # nothing imported into this home
    bad = _cli(["frobnicate", "--profile", "paper"], tmp_path)
    assert bad.returncode == 2 and "valid choices: make, import, fetch, list, evaluate, prune" in bad.stderr


def test_fetch_uses_the_tables_address_and_checksum(tmp_path, monkeypatch):
    state, _ = zeros_state("resnet18", seed=5)
    file = tmp_path / "published.pth"
    torch.save(state, file)
    checksum = hashlib.sha256(file.read_bytes()).hexdigest()
    entry = catalog.PublishedTicket("tiny-r18", "resnet18", "GMP", 0.75, 0.5, "test page", url=file.as_uri(), sha256=checksum)
    monkeypatch.setattr(catalog, "TABLE", (*catalog.TABLE, entry))
    report = imported.fetch_ticket("tiny-r18", tmp_path / "artifacts")
    assert report["checksum_verified"] and report["download_sha256"] == checksum
    assert report["published_sparsity"] == 0.75
    wrong = catalog.PublishedTicket("tiny-bad", "resnet18", "GMP", 0.75, 0.5, "p", url=file.as_uri(), sha256="ab" * 32)
    monkeypatch.setattr(catalog, "TABLE", (*catalog.TABLE, wrong))
    with pytest.raises(ReprolibError, match="checksum mismatch"):
        imported.fetch_ticket("tiny-bad", tmp_path / "artifacts")


def test_curated_table_names_known_backbones_and_sane_numbers():
    from reprolib.models import names

    assert len(set(catalog.names())) == len(catalog.TABLE)
    for entry in catalog.TABLE:
        assert entry.backbone in names() and 0.5 < entry.sparsity < 1.0 and 0.5 < entry.published_top1 < 0.8
        assert entry.mask in ("zeros", "tensorflow")
    assert catalog.get("str-resnet50-98").published_top1 == 0.6146


def test_bad_ticket_names_and_profile_entries(tmp_path):
    with pytest.raises(ReprolibError, match="bad ticket name '../x'"):
        imported.import_ticket(tmp_path, "../x", tmp_path, "resnet18")
    from reprolib.sparsity.recipe import TicketRecipe

    class P:   # a profile-like object with a bad imported entry
        backbone, tickets = "resnet18", {"imported": {"a": 3}}
    with pytest.raises(ReprolibError, match="tickets.imported.a is int 3; valid: a string"):
        TicketRecipe.for_profile(P())
