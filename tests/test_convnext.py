"""ConvNeXt-Tiny: one registry entry, the dry run's random "ImageNet" weights, and the study's methods.

With the dry run's random weights (written under torchvision's checkpoint name, loaded through
the paper path `get_backbone(name, "default", root=...)`), LP, VP and SMM each train one step
and give K target logits.
"""

from __future__ import annotations

import pytest
import torch

from reprolib.data.catalog import info
from reprolib.data.split import from_tensors
from reprolib.dryrun import write_random_imagenet_weights
from reprolib.models import get_backbone, get_spec
from reprolib.models.registry import get_family
from reprolib.protocols import get_protocol
from reprolib.transfer.method import MethodContext
from reprolib.transfer.registry import build_method

NAME = "convnext_tiny"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_hub")
    written = write_random_imagenet_weights(NAME, checkpoint_dir=root, seed=0)
    assert written["status"] == "written" and written["path"].endswith("convnext_tiny-983f1562.pth")
    with torch.random.fork_rng(devices=[]):
        return get_backbone(NAME, weights="default", root=root)


def test_entry_facts():
    spec = get_spec(NAME)
    assert (spec.weights, spec.tickets, spec.family, spec.input_size, spec.num_source_classes) == \
        ("ConvNeXt_Tiny_Weights.IMAGENET1K_V1", "oneshot", "convnext", 224, 1000)
    assert spec.prune_exclude == ("features.0.0.weight", "classifier.2.weight")
    family = get_family(spec.family)
    assert (family.smm_layers, family.generator_decay, family.published_sparse) == (5, True, False)


def test_features_are_what_the_head_reads(backbone):
    x = backbone.normalize(torch.rand(2, 3, 224, 224))
    with torch.no_grad():
        features, logits = backbone.features(x), backbone(x)
        head = backbone.net.get_submodule("classifier.2")
        torch.testing.assert_close(head(features), logits, rtol=0, atol=1e-5)
    assert features.shape == (2, 768) and backbone.feature_dim == 768


@pytest.mark.parametrize("method,label_map", [("lp", None), ("vp", "ilm"), ("smm", "ilm")])
def test_each_method_trains_a_step(backbone, method, label_map):
    """One optimiser step changes the learned parameters and gives finite K-way logits."""
    ctx = MethodContext(backbone=backbone, target=info("digits"), protocol=get_protocol("dryrun"), epochs=1,
                        seed=1, device="cpu", label_map=label_map)
    built = build_method(method, ctx)
    images, labels = torch.rand(10, 1, 8, 8), torch.arange(10)
    stored = built.prepare(from_tensors(images, labels))
    params = [p for m in built.modules for p in m.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    logits = built.forward(stored.x(torch.arange(4)))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, labels[:4]).backward()
    for optimizer in built.optimizers:
        optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params))
