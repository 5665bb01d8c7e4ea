"""Backbone registry: shapes, names, normalisation, weights handling, one-line errors."""

from __future__ import annotations

import pytest
import torch

from reprolib.errors import ReprolibError
from reprolib.models import FASHION_MNIST_MEAN, FASHION_MNIST_STD, get_backbone, names

EXPECTED = {  # name -> (input size, channels, source classes, feature dim)
    "small_resnet": (28, 1, 10, 128),
    "resnet18": (224, 3, 1000, 512),
    "resnet50": (224, 3, 1000, 2048),
}


@pytest.fixture(autouse=True)
def one_thread():
    # one CPU thread: on a shared, oversubscribed machine two spin-waiting threads are far slower
    from reprolib.upstream import cpu_threads

    with cpu_threads(1):
        yield


def test_registry_names():
    assert names() == ["small_resnet", "resnet18", "resnet50"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n
                                  for n in EXPECTED])
def test_forward_and_features_shapes(name):
    torch.manual_seed(0)
    backbone = get_backbone(name, weights=None)
    size, channels, classes, dim = EXPECTED[name]
    assert (backbone.input_size, backbone.channels, backbone.num_source_classes, backbone.feature_dim) == \
        (size, channels, classes, dim)
    x = backbone.normalize(torch.rand(2, channels, size, size))
    with torch.no_grad():
        logits, feats = backbone(x), backbone.features(x)
    assert logits.shape == (2, classes) and feats.shape == (2, dim)
    assert torch.isfinite(logits).all() and torch.isfinite(feats).all()
    # features are exactly what the classifier sees
    torch.testing.assert_close(backbone.net.fc(feats), logits)
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


def test_small_resnet_default_weights_need_upstream_model(tmp_path):
    message = _one_line_error(lambda: get_backbone("small_resnet", weights="default", root=tmp_path))
    assert "python -m reprolib upstream" in message
