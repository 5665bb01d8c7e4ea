"""The Reprogrammer study on the transfer runs' path: its id hashes its resolved description (device,
encoder weights, data fingerprints) and not the profile's name, a run is done when its record
verifies, its logits are saved beside the record and give its metrics back, and an OOD set that
cannot be loaded is a one-line error."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from description_walk import changed, leaves, with_leaf
from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.reprogrammer import runs
from reprolib.reprogrammer.encoders import TinyDualEncoder
from reprolib.reprogrammer.pretrain import embedded_vocabulary
from reprolib.reprogrammer.recipe import recipe_for

REPO = Path(__file__).resolve().parents[1]


def _inputs(recipe, seed: int = 0):
    torch.manual_seed(seed)
    encoder = TinyDualEncoder(embedded_vocabulary(recipe.template)).eval()
    return runs.target_inputs(encoder, recipe, "digits", None)


def test_every_field_but_the_profile_name_is_hashed():
    recipe = recipe_for(load_profile("smoke"))
    config = runs.describe("smoke", recipe, ("residual_reprogrammer", 0.4), "digits", 1, "cpu", _inputs(recipe))
    assert config["cpu_kernels"]["threads"] == 1 and config["device"] == "cpu"
    assert set(config["data"]["ood"]) == {"fashion_mnist", "glyphs"}
    base = runs.run_id(config)
    for path, value in leaves(config):
        moved = runs.run_id(with_leaf(config, path, changed(value))) != base
        assert moved == (path[0] not in runs.NEUTRAL_KEYS), path


def test_other_encoder_weights_are_another_run():
    recipe = recipe_for(load_profile("smoke"))
    one, other = _inputs(recipe, seed=0), _inputs(recipe, seed=1)
    assert one.encoder["weights"] != other.encoder["weights"] and one.encoder["captions"] == other.encoder["captions"]
    assert one.data == other.data


def test_an_ood_set_that_cannot_be_loaded_is_one_line(monkeypatch, tmp_path):
    """Not skipped without a word, as before: a table's OOD columns must always mean the same sets."""
    from reprolib.data import catalog
    from reprolib.reprogrammer.evaluate import build_eval_sets

    monkeypatch.setitem(catalog._INFOS, "digits", dataclasses.replace(catalog.info("digits"),
                                                                      ood_partners=("cifar10", "glyphs")))
    recipe = recipe_for(load_profile("smoke"))
    for call in (lambda: _inputs(recipe), lambda: build_eval_sets("digits", recipe, 1, tmp_path)):
        with pytest.raises(ReprolibError) as err:
            call()
        assert "OOD set 'cifar10' (a partner of digits) cannot be loaded" in str(err.value)
        assert "\n" not in str(err.value)


def _renamed_profile(tmp_path: Path, name: str, artifacts: Path):
    text = (REPO / "reprolib" / "profiles" / "smoke.yaml").read_text().splitlines()
    kept = [line for line in text if line.split(":")[0] not in ("profile", "artifacts")]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(kept + [f"profile: {name}", f"artifacts: {artifacts}"]) + "\n")
    return load_profile(str(path))


@pytest.mark.slow
def test_the_study_saves_its_scores_resumes_by_verified_record_and_ignores_the_profile_name(tmp_path):
    from reprolib import paths
    from reprolib.reprogrammer import run_reprogrammer_study

    first = load_profile("smoke", artifacts=str(tmp_path / "a"))
    records = run_reprogrammer_study(first, alphas=(1.0,))
    folder = paths.reprogrammer_runs_dir(first.path("artifacts"))
    assert len(records) == len(list(folder.glob("*.json"))) == 6
    for record in records:                                      # the saved logits give the metrics back
        assert runs.metrics_from_scores(folder / f"{record['id']}.scores.npz") == record["metrics"]
        assert record["config"]["profile"] == "smoke" and record["config"]["encoder"]["weights"]
    # Another profile name, its own artifacts (the encoder cache copied: the same settings, the same weights):
    # the same ids, and the same numbers to the last bit.
    renamed = _renamed_profile(tmp_path, "smoke_renamed", tmp_path / "b")
    shutil.copytree(tmp_path / "a" / "reprogrammer", tmp_path / "b" / "reprogrammer",
                    ignore=shutil.ignore_patterns("runs"))
    again = run_reprogrammer_study(renamed, alphas=(1.0,))
    assert [r["id"] for r in again] == [r["id"] for r in records]
    assert [r["metrics"] for r in again] == [r["metrics"] for r in records]
    # done = the record verifies, not "a file exists": a cut record is set aside and exactly that run reruns
    folder_b = paths.reprogrammer_runs_dir(renamed.path("artifacts"))
    cut = folder_b / f"{again[0]['id']}.json"
    cut.write_text(cut.read_text()[:200])
    stamps = {p.name: p.stat().st_mtime_ns for p in folder_b.glob("*.json") if p != cut}
    rerun = run_reprogrammer_study(renamed, alphas=(1.0,))
    assert (folder_b / f"{again[0]['id']}.bad.json").is_file() and rerun[0]["metrics"] == records[0]["metrics"]
    assert {p.name: p.stat().st_mtime_ns for p in folder_b.glob("*.json")
            if p != cut and not p.name.endswith(".bad.json")} == stamps
