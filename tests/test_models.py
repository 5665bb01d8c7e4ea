"""Backbone registry: specs, shapes, names, normalisation, weights handling, one-line errors."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reprolib.errors import ReprolibError
from reprolib.models import FASHION_MNIST_MEAN, FASHION_MNIST_STD, BackboneSpec, get_backbone, get_spec, names
from reprolib.models.registry import FAMILIES, TICKET_SOURCES, register

REPROLIB = Path(__file__).resolve().parent.parent / "reprolib"

BIG = ("resnet50", "vit_b_16")   # slow on 2 CPU cores: marked slow (any other entry runs by default)


@pytest.fixture(autouse=True)
def one_thread():
    # one CPU thread: on a shared, oversubscribed machine two spin-waiting threads are far slower
    from reprolib.sparsity.upstream import cpu_threads

    with cpu_threads(1):
        yield


def test_registry_names_and_every_profile_s_backbone():
    from reprolib.config import load_profile, profile_names

    assert names() == [get_spec(n).name for n in names()] and len(set(names())) == len(names())
    assert {load_profile(p).backbone for p in profile_names()} <= set(names())


def test_known_entries_keep_their_shapes():
    """The shipped studies' and the papers' backbones, as the papers and torchvision state them."""
    expected = {"small_resnet": (28, 1, 10, 128), "resnet18": (224, 3, 1000, 512), "resnet50": (224, 3, 1000, 2048),
                "vit_b_32": (224, 3, 1000, 768), "efficientnet_lite0": (64, 3, 1000, 1280)}
    assert {n: (get_spec(n).input_size, get_spec(n).channels, get_spec(n).num_source_classes, get_spec(n).feature_dim)
            for n in expected} == expected


def _slow_if_big(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in BIG else name


@pytest.mark.parametrize("name", [_slow_if_big(n) for n in names()])
def test_spec_metadata_matches_the_built_network(name):
    """Building a spec's network and a forward pass agree with every fact the spec states."""
    spec = get_spec(name)
    assert spec.name == name and spec.tickets in TICKET_SOURCES and spec.family in FAMILIES
    assert len(spec.mean) == len(spec.std) == spec.channels
    assert (spec.tickets == "imp") == (spec.weights == "upstream")
    torch.manual_seed(0)
    backbone = get_backbone(name, weights=None)
    assert (backbone.input_size, backbone.channels, backbone.num_source_classes) == \
        (spec.input_size, spec.channels, spec.num_source_classes)
    assert (backbone.mean, backbone.std, backbone.family) == (spec.mean, spec.std, spec.family)
    assert backbone.feature_dim == backbone.net.get_submodule(spec.classifier).in_features
    x = backbone.normalize(torch.rand(2, spec.channels, spec.input_size, spec.input_size))
    with torch.no_grad():
        assert backbone(x).shape == (2, spec.num_source_classes)
    assert spec.build(7).get_submodule(spec.classifier).out_features == 7   # the builder honours num_classes
    assert dict(spec.build(7).named_parameters())[f"{spec.stem}.weight"].dim() == 4   # the stem is a conv


def test_spec_values():
    small, r18, r50 = (get_spec(n) for n in ("small_resnet", "resnet18", "resnet50"))
    assert (small.weights, small.tickets, small.mean, small.std) == ("upstream", "imp", (0.2860,), (0.3530,))
    assert (r18.weights, r18.tickets) == ("ResNet18_Weights.IMAGENET1K_V1", "oneshot")
    assert (r50.weights, r50.tickets) == ("ResNet50_Weights.IMAGENET1K_V2", "oneshot")
    assert r50.mean == (0.485, 0.456, 0.406) and r50.std == (0.229, 0.224, 0.225)


def test_spec_is_frozen_and_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_spec("resnet18").input_size = 32
    fields = dict(name="tiny", build=lambda n: None, input_size=8, channels=1, mean=(0.5,), std=(0.5,),
                  num_source_classes=2, family="resnet", weights="upstream", tickets="imp", feature_dim=4)
    with pytest.raises(ReprolibError, match="unknown tiny ticket source 'loaded'; valid choices: imp, oneshot"):
        BackboneSpec(**{**fields, "tickets": "loaded"})
    with pytest.raises(ReprolibError, match="tickets 'imp' go with weights 'upstream'"):
        BackboneSpec(**{**fields, "weights": "ResNet18_Weights.IMAGENET1K_V1"})
    with pytest.raises(ReprolibError, match="mean/std need 1 values"):
        BackboneSpec(**{**fields, "mean": (0.5, 0.5)})
    with pytest.raises(ReprolibError, match="'resnet18' is already registered"):
        register(dataclasses.replace(get_spec("resnet18")))
    with pytest.raises(ReprolibError, match="unknown backbone 'vit_b'; valid choices: " + ", ".join(names())):
        get_spec("vit_b")


def _string_constants(tree: ast.AST) -> list[str]:
    """Every str constant of a module except docstrings (module, class, function)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_outside_the_registry_names_a_backbone():
    offenders = []
    for path in sorted(REPROLIB.rglob("*.py")):
        relative = path.relative_to(REPROLIB)
        if relative.parts[0] == "models":
            continue
        for text in _string_constants(ast.parse(path.read_text())):
            offenders += [f"{relative}: {text!r}" for name in names() if re.search(rf"\b{name}\b", text)]
    assert offenders == []


@pytest.mark.parametrize("name", [_slow_if_big(n) for n in names()])
def test_forward_and_features_shapes(name):
    torch.manual_seed(0)
    backbone = get_backbone(name, weights=None)
    spec = get_spec(name)
    size, channels, classes, dim = spec.input_size, spec.channels, spec.num_source_classes, spec.feature_dim
    assert (backbone.input_size, backbone.channels, backbone.num_source_classes, backbone.feature_dim) == \
        (size, channels, classes, dim)
    x = backbone.normalize(torch.rand(2, channels, size, size))
    with torch.no_grad():
        logits, feats = backbone(x), backbone.features(x)
    assert logits.shape == (2, classes) and feats.shape == (2, dim)
    assert torch.isfinite(logits).all() and torch.isfinite(feats).all()
    # features are exactly what the classifier sees
    torch.testing.assert_close(backbone.net.get_submodule(get_spec(name).classifier)(feats), logits)
    assert not backbone.training  # returned in eval mode


def test_small_resnet_names_and_size():
    net = get_backbone("small_resnet", weights=None).net
    params = dict(net.named_parameters())
    for name in ("conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer4.0.bn2.bias", "fc.weight", "fc.bias"):
        assert name in params
    total = sum(p.numel() for p in params.values())
    assert 200_000 <= total <= 350_000
    assert params["conv1.weight"].shape == (16, 1, 3, 3)
    assert params["fc.weight"].shape == (10, 128)


def test_normalize_uses_per_channel_constants():
    small = get_backbone("small_resnet", weights=None)
    x = torch.full((1, 1, 28, 28), 0.5)
    assert torch.allclose(small.normalize(x), (0.5 - FASHION_MNIST_MEAN[0]) / torch.tensor(FASHION_MNIST_STD[0]))
    big = get_backbone("resnet18", weights=None)
    y = big.normalize(torch.zeros(1, 3, 4, 4))
    expected = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    assert torch.allclose(y[0, :, 0, 0], torch.tensor(expected))


def test_weights_from_path_round_trip(tmp_path):
    torch.manual_seed(1)
    source = get_backbone("small_resnet", weights=None)
    path = tmp_path / "model.pth"
    torch.save(source.net.state_dict(), path)
    torch.manual_seed(2)
    loaded = get_backbone("small_resnet", weights=path)
    for key, value in source.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value)


def _one_line_error(call) -> str:
    with pytest.raises(ReprolibError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_name_is_one_line():
    message = _one_line_error(lambda: get_backbone("resnet99", weights=None))
    assert "resnet99" in message and "small_resnet" in message and "resnet50" in message


def test_missing_weights_file_is_one_line(tmp_path):
    message = _one_line_error(lambda: get_backbone("small_resnet", weights=tmp_path / "none.pth"))
    assert "none.pth" in message


def test_wrong_state_dict_is_one_line(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(get_backbone("resnet18", weights=None).net.state_dict(), path)
    message = _one_line_error(lambda: get_backbone("small_resnet", weights=path))
    assert "small_resnet" in message


def test_offline_torchvision_weights_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    message = _one_line_error(lambda: get_backbone("resnet50", weights="default", root=tmp_path / "cache"))
    assert "resnet50" in message and "download" in message


def test_upstream_backbone_has_no_default_weights(tmp_path):
    """Weights trained here come from the caller (get_network knows the ticket directory)."""
    message = _one_line_error(lambda: get_backbone("small_resnet", weights="default", root=tmp_path))
    assert "small_resnet has no default weights" in message and "python -m reprolib upstream" in message
    assert "get_network" in message


def test_import_models_is_light():
    code = ("import sys, reprolib.models as m; m.names(); m.get_spec('resnet50'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- ViT (issue 10) -------------------------------------------------------------------

def test_vit_specs_own_their_stem_head_and_facts():
    for name in ("vit_b_32", "vit_b_16"):
        spec = get_spec(name)
        assert (spec.family, spec.tickets, spec.input_size, spec.num_source_classes) == ("vit", "oneshot", 224, 1000)
        assert (spec.mean, spec.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        assert spec.prune_exclude == ("conv_proj.weight", "heads.head.weight")
    assert get_spec("vit_b_32").weights == "ViT_B_32_Weights.IMAGENET1K_V1"
    assert get_spec("vit_b_16").weights == "ViT_B_16_Weights.IMAGENET1K_V1"
    assert get_spec("resnet18").prune_exclude == ("conv1.weight", "fc.weight")


def test_vit_features_are_the_class_token_after_the_final_layernorm():
    torch.manual_seed(0)
    backbone = get_backbone("vit_b_32", weights=None)
    net = backbone.net
    x = backbone.normalize(torch.rand(2, 3, 224, 224))
    seen = {}
    hook = net.encoder.ln.register_forward_hook(lambda module, inputs, output: seen.setdefault("ln", output))
    with torch.no_grad():
        feats = backbone.features(x)
    hook.remove()
    torch.testing.assert_close(feats, seen["ln"][:, 0])          # the class token, after the final LayerNorm
    with torch.no_grad():
        torch.testing.assert_close(net.heads.head(feats), backbone(x))


def test_vit_one_shot_mask_covers_attention_in_projections():
    from reprolib.sparsity import masks as M

    net = get_backbone("vit_b_32", weights=None).net
    spec = get_spec("vit_b_32")
    names_ = M.prunable_names(net, spec.prune_exclude)
    assert len(names_) == 12 * 4   # per block: attention in_proj, out_proj, two MLP linears
    assert "encoder.layers.encoder_layer_0.self_attention.in_proj_weight" in names_
    assert "conv_proj.weight" not in names_ and "heads.head.weight" not in names_
    mask = M.global_magnitude_prune(net, M.full_mask(net, spec.prune_exclude), 0.2)
    assert M.density(mask)[0] == pytest.approx(0.8, abs=1e-6)
    # no conv besides the stem: RLT's density reports the encoder's prunable weights
    assert M.density_rlt(net, mask, *spec.prune_exclude) == pytest.approx(0.8, abs=1e-6)
