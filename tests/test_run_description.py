"""A run's id is the hash of its whole resolved description: every field is hashed or on
records.NEUTRAL_KEYS, and each neutral field is proven not to change a number.

The field tests walk the description of every registered method, so a new field (or method) is
tested without editing this file; the entry tests go through the registry entries the issue found
outside the id (a dataset's prompt size, the watermark frames, SMM's depth, the normalisation,
the fonts behind glyphs, the CPU kernels)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from description_walk import changed, leaves, with_leaf
from reprolib.records import FOUND_KEYS, NEUTRAL_KEYS, record_id

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


def _config(**changes):
    from reprolib.transfer.config import TransferConfig

    fields = dict(profile="smoke", target="digits", method="vp", n_shot=5, epochs=1, device="cpu", progress=False)
    return TransferConfig(**{**fields, **changes})


def _id(cfg) -> str:
    from reprolib.transfer.run import resolve

    return record_id(resolve(cfg)[0])


@pytest.mark.parametrize("method", __import__("reprolib.transfer.registry", fromlist=["names"]).names())
def test_every_field_is_hashed_or_neutral(smoke_upstream, method):
    """Changing any hashed leaf changes the id, changing a neutral one does not; no field the run
    found (FOUND_KEYS) is part of the description."""
    from reprolib.transfer.run import resolve

    description, _, _ = resolve(_config(method=method, select_best_on_val=True))
    assert not set(description) & set(FOUND_KEYS)
    assert set(NEUTRAL_KEYS) <= set(description)
    base = record_id(description)
    fields = list(leaves(description))
    assert len(fields) > 40   # data, geometry, network, hparams, schedule, CPU kernels, names
    for path, value in fields:
        moved = record_id(with_leaf(description, path, changed(value))) != base
        assert moved == (path[0] not in NEUTRAL_KEYS), path


def test_the_data_part_holds_definitions_fingerprints_draw_and_carve(smoke_upstream):
    from reprolib.transfer.run import resolve

    full, _, _ = resolve(_config(n_shot=-1))
    few, _, _ = resolve(_config(select_best_on_val=True))
    assert full["data"]["draw"] is None and full["data"]["validation"] is None
    assert few["data"]["draw"] and few["data"]["validation"]
    assert few["data"]["train"] == full["data"]["train"] and few["data"]["test"] == full["data"]["test"]
    assert few["data"]["train"]["definition"]["test_fraction"] == 0.2   # sklearn digits' stratified split
    seed_2, _, _ = resolve(_config(select_best_on_val=True, seed=2))
    assert seed_2["data"]["draw"] != few["data"]["draw"]


def _entry_ids(monkeypatch, change, methods=("lp", "vp", "smm", "narrow", "medium", "full")) -> set[str]:
    """The methods whose run id changes when `change(monkeypatch)` edits a registry entry."""
    before = {m: _id(_config(method=m)) for m in methods}
    change(monkeypatch)
    return {m for m in methods if _id(_config(method=m)) != before[m]}


def _replace_dataset(monkeypatch, name, **facts):
    from reprolib.data import catalog

    monkeypatch.setitem(catalog._INFOS, name, dataclasses.replace(catalog.info(name), **facts))


def _replace_backbone(monkeypatch, **facts):
    from reprolib.models import registry

    spec = registry.get_spec("small_resnet")
    monkeypatch.setitem(registry._REGISTRY, "small_resnet", dataclasses.replace(spec, **facts))


def test_a_dataset_prompt_size_changes_exactly_the_runs_that_place_images_by_it(smoke_upstream, monkeypatch):
    """The issue: digits' prompt_size 20 -> 24 kept VP's id. Watermarks and SMM take the backbone's
    input size and LP the features of it, so their numbers (and ids) stay."""
    assert _entry_ids(monkeypatch, lambda mp: _replace_dataset(mp, "digits", prompt_size=24)) == {"vp"}


def test_a_watermark_frame_width_changes_exactly_its_prompt(smoke_upstream, monkeypatch):
    from reprolib.prompts import kinds

    narrow = dataclasses.replace(kinds.get_kind("narrow"), settings={"frame_width_at_224": 84})
    changed = _entry_ids(monkeypatch, lambda mp: mp.setitem(kinds._KINDS, "narrow", narrow))
    assert changed == {"narrow"}


def test_the_smm_generator_depth_changes_exactly_smm(smoke_upstream, monkeypatch):
    from reprolib.models import registry

    family = registry.get_family("resnet")
    changed = _entry_ids(monkeypatch, lambda mp: mp.setitem(registry._FAMILIES, "resnet",
                                                            dataclasses.replace(family, smm_layers=6)))
    assert changed == {"smm"}


def test_the_smm_generator_schedule_of_a_family_changes_exactly_smm(smoke_upstream, monkeypatch):
    """The family decides SMM's generator rate and whether it decays (ViT: no decay): its entry, not the preset."""
    from reprolib.models import registry

    family = registry.get_family("resnet")
    changed = _entry_ids(monkeypatch, lambda mp: mp.setitem(registry._FAMILIES, "resnet",
                                                            dataclasses.replace(family, generator_decay=False)))
    assert changed == {"smm"}


def test_the_backbone_geometry_changes_the_runs_that_read_it(smoke_upstream, monkeypatch):
    every = {"lp", "vp", "smm", "narrow", "medium", "full"}
    assert _entry_ids(monkeypatch, lambda mp: _replace_backbone(mp, mean=(0.3,))) == every
    monkeypatch.undo()
    assert _entry_ids(monkeypatch, lambda mp: _replace_backbone(mp, prompt_side=16)) == {"vp"}


def test_the_fonts_behind_glyphs_are_part_of_its_runs_ids(smoke_upstream, monkeypatch, tmp_path):
    """The issue: glyphs is drawn from the installed fonts (33 with Debian's DejaVu, fewer with
    matplotlib's alone), and a resumed sweep reused records made from other images."""
    from reprolib.config import load_profile
    from reprolib.data import glyphs, registry
    from reprolib.transfer import run as run_module

    with_system = glyphs.load_glyphs("test", registry.resolve_root(None), system_fonts=True)
    bundled = glyphs.load_glyphs("test", tmp_path, system_fonts=False)
    assert len(with_system.definition["fonts"]) > len(bundled.definition["fonts"])
    assert with_system.content_fingerprint() != bundled.content_fingerprint()
    cfg = _config(target="glyphs", method="lp")
    before = _id(cfg)
    own = dataclasses.replace(load_profile("smoke"), data_root=str(tmp_path))
    monkeypatch.setattr(run_module, "load_profile", lambda name: own)
    monkeypatch.setattr(glyphs, "read_glyphs", lambda name, split, root, download, size:
                        glyphs.load_glyphs(split, root, system_fonts=False))   # the entry's reader
    assert _id(cfg) != before


def test_a_cached_split_is_fingerprinted_by_its_cache_digest_not_its_bytes():
    """A paper split's fingerprint reads no image: the cache's digest was computed when it was written."""
    import numpy as np
    import torch

    from reprolib.data.catalog import info
    from reprolib.data.split import ImageSplit

    images = np.zeros((4, 3, 2, 2), np.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    split = ImageSplit(info("cifar10"), "test", "note", labels, images, digest="d1")
    before = split.content_fingerprint()
    images[0] = 255                                     # the bytes are not read again
    assert split.content_fingerprint() == before
    assert ImageSplit(info("cifar10"), "test", "note", labels, images, digest="d2").content_fingerprint() != before
    assert ImageSplit(info("cifar10"), "test", "note", labels.flip(0), images, digest="d1").content_fingerprint() != before


# --- CPU kernels: a record made under other CPU facts is never taken as finished ---

def test_records_hold_the_mkl_mode_mkl_reports(smoke_upstream, tmp_path):
    import torch

    from reprolib.determinism import MKL_BRANCHES, is_x86_64, mkl_mode
    from reprolib.transfer.run import run_transfer

    record = run_transfer(_config(method="lp", results_path=str(tmp_path)))
    assert record["cpu"]["mkl"] == mkl_mode() == record["config"]["cpu_kernels"]["mkl"]
    if not (is_x86_64() and torch.backends.mkl.is_available()):
        pytest.skip(f"no MKL to ask on this machine ({mkl_mode()})")
    assert mkl_mode().removesuffix("+STRICT") in MKL_BRANCHES.values()
    code = "import reprolib; from reprolib.determinism import mkl_mode; print(mkl_mode())"
    env = {**os.environ, "REPROLIB_CPU_ISA": "native", "MKL_CBWR": "COMPATIBLE"}   # honoured on every x86-64
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "COMPATIBLE"


def _stem_in_subprocess(env_changes: dict[str, str]) -> str:
    code = ("import reprolib\nfrom reprolib.transfer.config import TransferConfig\n"
            "from reprolib.transfer.run import record_path\n"
            "print(record_path(TransferConfig(profile='smoke', target='digits', method='lp', n_shot=5, epochs=1,"
            " device='cpu')).stem)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env_changes}, capture_output=True,
                         text=True, check=True, cwd=REPO)
    return out.stdout.strip().splitlines()[-1]


def test_the_cpu_isa_pin_is_part_of_the_id(smoke_upstream):
    """The issue: REPROLIB_CPU_ISA=native (AVX-512 kernels, another NLL) kept the AVX2 run's id."""
    assert _stem_in_subprocess({"REPROLIB_CPU_ISA": "native"}) != _stem_in_subprocess({"REPROLIB_CPU_ISA": "avx2"})


def test_a_record_made_under_other_cpu_facts_is_rerun_and_the_ledger_shows_one(smoke_upstream, tmp_path,
                                                                               monkeypatch, capsys):
    from reprolib.determinism import kernel_facts
    from reprolib.study.ledger import build_ledger
    from reprolib.transfer import run as run_module

    cfg = _config(method="lp", results_path=str(tmp_path / "runs"))
    here = run_module.run_transfer(cfg)
    assert run_module.existing_record(cfg)["id"] == here["id"]
    for other in ({"threads": 2}, {"mkl": "AVX2" if here["cpu"]["mkl"] != "AVX2" else "AUTO"},
                  {"capability": "AVX512"}):
        monkeypatch.setattr(run_module, "kernel_facts", lambda device, other=other: {**kernel_facts(device), **other})
        assert run_module.existing_record(cfg) is None                 # not taken as finished: the sweep reruns it
    elsewhere = run_module.run_transfer(cfg)                           # "another machine's" record of the run
    assert elsewhere["id"] != here["id"] and (tmp_path / "runs" / f"{here['id']}.json").is_file()
    monkeypatch.undo()
    assert list(build_ledger(tmp_path)["id"]) == [here["id"]]          # one run: the one made under this machine's facts
    assert "1 records left out: the same runs made under other CPU facts" in capsys.readouterr().err


# --- the neutral fields: each proven not to change a number (same id, bit-identical metrics) ---

def _profile_copy(tmp_path: Path, name: str, **keys: str) -> str:
    """A copy of the smoke profile named `name`, reading the smoke profile's tickets, with `keys` replaced."""
    from reprolib.config import load_profile

    lines = [f"profile: {name}", f"artifacts: {load_profile('smoke').path('artifacts')}"]
    lines += [f"{k}: {v}" for k, v in keys.items()]
    text = (REPO / "reprolib" / "profiles" / "smoke.yaml").read_text().splitlines()
    kept = [line for line in text if line.split(":")[0] not in {"profile", "artifacts", *keys}]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(kept + lines) + "\n")
    return str(path)


def _imported_copies(tmp_path: Path) -> tuple[str, str]:
    """Two folders holding the smoke dense model as an imported ticket (the same network, two names)."""
    from reprolib.config import load_profile
    from reprolib.sparsity.masks import ticket_dir

    dense = ticket_dir(load_profile("smoke").path("artifacts"), "imp", 0)
    return tuple(str(shutil.copytree(dense, tmp_path / name)) for name in ("ticket_a", "ticket_b"))


def _renamed_protocol(monkeypatch) -> str:
    """A copy of the smoke preset under another name (the record's preset differs; LP's numbers and
    schedule do not: LP's entry sets no number for either preset)."""
    from reprolib import protocols

    monkeypatch.setitem(protocols.PRESETS, "smoke_copy",
                        dataclasses.replace(protocols.PRESETS["smoke"], name="smoke_copy"))
    return "smoke_copy"


# key -> (config changes of run A, of run B): the two differ in that key's field only as far as it can
NEUTRAL_PAIRS = {
    "profile": lambda tmp, mp: ({}, {"profile": _profile_copy(tmp, "smoke_renamed")}),
    "source": lambda tmp, mp: ({}, {"profile": _profile_copy(tmp, "smoke_source", source="digits")}),
    "network": lambda tmp, mp: ({}, {"network": "LT", "kind": "random", "level": 0}),
    "kind": lambda tmp, mp: ({"network": "LT", "kind": "magnitude", "level": 0},
                             {"network": "LT", "kind": "random", "level": 0}),
    "level": lambda tmp, mp: (lambda a, b: ({"network": "LT", "kind": "imported", "level": 1, "pretrained_dir": a},
                                            {"network": "LT", "kind": "imported", "level": 2, "pretrained_dir": a}))(
        *_imported_copies(tmp)),
    "pretrained_dir": lambda tmp, mp: (lambda a, b: ({"network": "LT", "kind": "imported", "level": 1,
                                                      "pretrained_dir": a},
                                                     {"network": "LT", "kind": "imported", "level": 1,
                                                      "pretrained_dir": b}))(*_imported_copies(tmp)),
    "protocol": lambda tmp, mp: ({"method": "lp"}, {"method": "lp", "protocol": _renamed_protocol(mp)}),
    # the dense model of replicate 2 is replicate 1's (no tickets.replicate_upstream): the same network
    "replicate": lambda tmp, mp: ({}, {"replicate": 2}),
}


def test_every_neutral_field_has_a_proof():
    assert set(NEUTRAL_PAIRS) == set(NEUTRAL_KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("key", NEUTRAL_KEYS)
def test_a_neutral_field_changes_no_number(smoke_upstream, key, tmp_path, monkeypatch):
    """Two runs whose descriptions differ in `key`: one id, and metrics equal to the last bit."""
    from reprolib.transfer.run import resolve, run_transfer

    a, b = NEUTRAL_PAIRS[key](tmp_path, monkeypatch)
    configs = [_config(results_path=str(tmp_path / side), **changes) for side, changes in (("a", a), ("b", b))]
    descriptions = [resolve(cfg)[0] for cfg in configs]
    assert descriptions[0][key] != descriptions[1][key]
    assert record_id(descriptions[0]) == record_id(descriptions[1])
    records = [run_transfer(cfg, force=True) for cfg in configs]
    assert records[0]["metrics"] == records[1]["metrics"]
