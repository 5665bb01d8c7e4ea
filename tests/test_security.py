"""No code runs from a data or artifacts file: safe torch.load everywhere, CIFAR pickles read by a restricted
unpickler, the md5 bypass only for reprolib's own dry-run profile (the CLI cases: test_bad_inputs.py)."""

from __future__ import annotations

import ast
import io
import os
import pickle
from pathlib import Path

import pytest

from reprolib.data import integrity
from reprolib.errors import ReprolibError

PACKAGE = Path(__file__).resolve().parent.parent / "reprolib"


def unsafe_torch_loads(source: str, filename: str = "<src>") -> list[str]:
    """`file:line` of every torch.load(...) call whose weights_only is not the literal True."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        if name != "load" or owner != "torch":
            continue
        safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                   for k in node.keywords)
        if not safe:
            found.append(f"{filename}:{node.lineno}")
    return found


def test_the_walker_flags_unsafe_and_missing_weights_only():
    source = ("import torch\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
              "torch.load(p, weights_only=flag)\ntorch.load(p, weights_only=True)\nnp.load(p)\n")
    assert unsafe_torch_loads(source) == ["<src>:2", "<src>:3", "<src>:4"]


def test_every_torch_load_in_the_package_uses_weights_only_true():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py"))
                 for hit in unsafe_torch_loads(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert offenders == []
    assert "torch.load(" in (PACKAGE / "models" / "weights.py").read_text()   # the walker sees real files


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_crafted_encoder_file_is_refused_not_run(tmp_path, monkeypatch):
    """A pickle payload in <artifacts>/reprogrammer/encoder.pth never runs (weights_only=True refuses it)."""
    from reprolib import paths
    from reprolib.reprogrammer.pretrain import get_embedded_encoder
    from reprolib.reprogrammer.recipe import ReprogrammerRecipe

    monkeypatch.chdir(tmp_path)
    path = paths.encoder_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"settings": _Payload()}, protocol=2))
    with pytest.raises(ReprolibError) as err:
        get_embedded_encoder(tmp_path, ReprogrammerRecipe())
    assert str(err.value).startswith(f"{path} is not a weights file reprolib can load safely (it pickles posix.system")
    assert str(err.value).endswith("; delete it and it is trained again")
    assert not (tmp_path / "PWNED").exists()


def test_a_marker_file_alone_does_not_turn_the_md5_check_off(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / integrity.DRYRUN_MARKER).write_text("")
    assert integrity.is_dryrun_root(root) and not integrity.bypass_applies(root)
    with integrity.bypassed_for_root(root) as applied:
        assert applied is False
        import torchvision.datasets.cifar as tv_cifar
        import torchvision.datasets.utils as tv_utils
        assert tv_cifar.check_integrity is tv_utils.check_integrity


def test_only_the_dry_run_profile_trusts_its_marked_root(tmp_path, monkeypatch):
    from reprolib.config import load_profile

    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    monkeypatch.setattr(integrity, "_TRUSTED_ROOTS", set())
    for name in ("smoke", "paper"):
        root = load_profile(name).path("data_root")
        root.mkdir(parents=True, exist_ok=True)
        (root / integrity.DRYRUN_MARKER).write_text("")
        assert not integrity.bypass_applies(root), name
    dryrun = load_profile("paper-dryrun")
    root = dryrun.path("data_root")
    assert dryrun.data_integrity == "dryrun" and not integrity.bypass_applies(root)   # not marked yet
    root.mkdir(parents=True)
    (root / integrity.DRYRUN_MARKER).write_text("")
    assert integrity.bypass_applies(root)


def test_data_integrity_comes_only_from_reprolib_s_own_profiles(tmp_path):
    """Neither a parameter nor a user's profile file can turn the md5 checks off; a built-in file
    is still checked against the choices."""
    from reprolib.config import load_profile, validate

    with pytest.raises(ReprolibError, match="data_integrity is set by a parameter; valid: only reprolib's own"):
        load_profile("smoke", data_integrity="dryrun")
    mine = tmp_path / "mine.yaml"
    mine.write_text("profile: mine\nbackbone: small_resnet\nsource: fashion_mnist\ndata_integrity: dryrun\n")
    with pytest.raises(ReprolibError, match=f"data_integrity is set by {mine}; valid: only reprolib's own"):
        load_profile(str(mine))
    with pytest.raises(ReprolibError, match="unknown data_integrity 'off'; valid choices: md5, dryrun"):
        validate({"profile": "smoke", "backbone": "small_resnet", "source": "fashion_mnist", "data_integrity": "off"})


def test_the_encoder_cache_the_workbook_writes_loads_with_weights_only(tmp_path, monkeypatch):
    """The real cache layout (settings, vocabulary, config, state_dict, info) passes weights_only=True."""
    import torch

    from reprolib import paths
    from reprolib.records import atomic_torch_save
    from reprolib.reprogrammer import pretrain
    from reprolib.reprogrammer.encoders import TinyDualEncoder
    from reprolib.reprogrammer.recipe import ReprogrammerRecipe

    recipe = ReprogrammerRecipe()
    settings, vocabulary = pretrain.encoder_settings(recipe, 1), pretrain.embedded_vocabulary(recipe.template)
    encoder = TinyDualEncoder(vocabulary)
    torch.nn.init.constant_(next(encoder.parameters()), 0.25)
    info = {"settings": settings, "zero_shot_accuracy_fashion_mnist_test": 0.5, "note": "test"}
    atomic_torch_save({"settings": settings, "vocabulary": vocabulary, "config": encoder.config,
                       "state_dict": encoder.state_dict(), "info": info}, paths.encoder_file(tmp_path))
    monkeypatch.setattr(pretrain, "get_dataset", lambda *a, **k: pytest.fail("retrained instead of loading"))
    loaded, loaded_info = pretrain.get_embedded_encoder(tmp_path, recipe, seed=1)
    assert loaded_info == info
    assert torch.equal(next(loaded.parameters()), next(encoder.parameters()))


def test_the_restricted_unpickler_reads_what_a_cifar_batch_holds():
    import numpy as np

    batch = {"batch_label": "training batch 1 of 5", "labels": [3, 1], "data": np.arange(12, dtype=np.uint8).reshape(2, 6),
             "filenames": [b"a.png", b"b.png"]}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = integrity.load_data_pickle(io.BytesIO(pickle.dumps(batch, protocol=protocol)), encoding="latin1")
        assert back["labels"] == [3, 1] and back["filenames"] == [b"a.png", b"b.png"]
        assert np.array_equal(back["data"], batch["data"]) and back["data"].dtype == np.uint8
    with pytest.raises(ReprolibError, match="it pickles builtins.eval, which no dataset holds"):
        integrity.load_data_pickle(io.BytesIO(pickle.dumps({"x": _Builtin()})))


class _Builtin:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_only_the_file_named_in_the_trust_variable_may_set_data_integrity(tmp_path, monkeypatch):
    """make gpu-check's own profile file is trusted by the path it passes; any other file is not."""
    from reprolib.config import TRUST_ENV, load_profile

    mine = tmp_path / "mine.yaml"
    mine.write_text("profile: mine\nbackbone: small_resnet\nsource: fashion_mnist\ndata_integrity: dryrun\n"
                    f"data_root: {tmp_path / 'root'}\n")
    monkeypatch.setenv(TRUST_ENV, str(tmp_path / "other.yaml"))
    with pytest.raises(ReprolibError, match=f"data_integrity is set by {mine}"):
        load_profile(str(mine))
    monkeypatch.setenv(TRUST_ENV, str(mine))
    assert load_profile(str(mine)).data_integrity == "dryrun"

