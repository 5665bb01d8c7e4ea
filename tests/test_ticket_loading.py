"""Loading lottery tickets: every format round-trips exactly, every bad input is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torchvision

import reprolib.sparsity
import ticket_files   # the tests' writers of each format (the library only reads them)
from reprolib.errors import ReprolibError
from reprolib.models.registry import names as backbone_names
from reprolib.sparsity import masks
from reprolib.sparsity.load import build_network, load_ticket, read_ticket
from ticket_files import ticket_densities

STATE = 4


def random_global_masks(net, states, seed=0, names=None):
    """Nested random global masks: state S keeps each prunable weight with probability 0.8^S.

    One uniform score per weight, kept where score < 0.8^S, so state S+1 is inside state S.
    """
    params = dict(net.named_parameters())
    generator = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(params[n].shape, generator=generator) for n in names or masks.prunable_names(net)}
    return {s: {n: (score < 0.8 ** s).float() for n, score in scores.items()} for s in states}


def assert_exact_ticket(loaded, mask, original_net):
    """Loaded weights are orig * mask where masked (so exactly 0 where mask 0), orig elsewhere."""
    net, got_mask = loaded
    assert set(got_mask) == set(mask)
    original = original_net.state_dict()
    for key, value in net.state_dict().items():
        if key in mask:
            assert torch.equal(got_mask[key], mask[key])
            # products with 0/1 are exact, so this is "== orig where 1, == 0 where 0"
            assert torch.equal(value, original[key] * mask[key]), key
        else:
            assert torch.equal(value, original[key]), key


@pytest.fixture(scope="module")
def r50():
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    return net, random_global_masks(net, [STATE])[STATE]


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(1)
    net = build_network("small_resnet")
    with torch.no_grad():  # non-trivial BN statistics, so buffers are checked too
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.num_batches_tracked.fill_(7)
    return net, random_global_masks(net, [2, 4, 6], seed=3)


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(ReprolibError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- round trips, resnet50

@pytest.mark.slow
@pytest.mark.parametrize("ckpt_prefix, mask_prefix, nested", [
    ("", "", False), ("model.", "", False), ("", "model.", True),
])
def test_rlt_format_round_trip_resnet50(r50, tmp_path, ckpt_prefix, mask_prefix, nested):
    net, mask = r50
    ticket_files.save_rlt_format(net, mask, tmp_path, STATE, "resnet50", prefix=ckpt_prefix, mask_prefix=mask_prefix, nested=nested)
    ticket = read_ticket(tmp_path, "resnet50", state=STATE)
    assert ticket.format == "rlt" and ticket.checkpoint_was_masked
    assert_exact_ticket((ticket.net, ticket.mask), mask, net)
    total = sum(m.numel() for m in mask.values())
    assert ticket.density == sum(float(m.sum()) for m in mask.values()) / total
    assert ticket.density == pytest.approx(0.8 ** STATE, abs=1e-3)   # 23M Bernoulli draws
    assert abs(ticket.measured_density - ticket.density) <= 1e-6   # chance zeros among kept weights only
    assert ticket.net.fc.out_features == 1000                       # the ticket's own ImageNet head


def test_rlt_unmasked_checkpoint_gets_masked(small, tmp_path):
    # The public loader's prefix bug ran such a checkpoint dense; ours multiplies the mask in.
    net, by_state = small
    ticket_files.save_rlt_format(net, by_state[4], tmp_path, 4, "small_resnet", prefix="module.model.",
                            mask_prefix="module.", apply_mask=False)
    ticket = read_ticket(tmp_path / "small_resnet_dyn4_4_checkpoint.pth", "small_resnet")
    assert ticket.format == "rlt" and not ticket.checkpoint_was_masked
    assert_exact_ticket((ticket.net, ticket.mask), by_state[4], net)
    assert ticket.measured_density == ticket.density


@pytest.mark.slow
def test_torch_prune_state_dict_resnet50(r50, tmp_path):
    net, mask = r50
    file = ticket_files.save_prune_state_dict(net, mask, tmp_path / "pruned.pth")
    assert any(k.endswith("weight_orig") for k in torch.load(file, weights_only=True))
    loaded_net, loaded_mask = load_ticket(file, "resnet50")
    assert_exact_ticket((loaded_net, loaded_mask), mask, net)


def test_open_lth_level_picks_trained_model(small, tmp_path):
    net, by_state = small
    level = tmp_path / "level_4" / "main"
    ticket_files.save_open_lth_level(net, by_state[2], level, epoch=0)      # the rewind point (other weights)
    ticket_files.save_open_lth_level(net, by_state[4], level, epoch=40)     # the trained ticket
    (level / "model_ep0_it0.pth").unlink()
    torch.save({"model." + k: v for k, v in build_network("small_resnet").state_dict().items()}, level / "model_ep0_it0.pth")
    ticket = read_ticket(tmp_path, "small_resnet", state=4)
    assert ticket.format == "open_lth" and ticket.model_file.name == "model_ep40_it0.pth"
    assert_exact_ticket((ticket.net, ticket.mask), by_state[4], net)


def test_open_lth_pruned_model_buffers(small, tmp_path):
    # open_lth's PrunedModel state dict: "model."-prefixed masked weights + mask_<a___b> buffers
    net, by_state = small
    state = {"model." + k: v * by_state[4].get(k, 1) for k, v in net.state_dict().items()}
    state.update({"mask_model___" + k.replace(".", "___"): m.int() for k, m in by_state[4].items()})
    torch.save(state, tmp_path / "pruned_model.pth")
    ticket = read_ticket(tmp_path / "pruned_model.pth", "small_resnet")
    assert ticket.format == "embedded" and ticket.checkpoint_was_masked
    assert_exact_ticket((ticket.net, ticket.mask), by_state[4], net)


def test_plain_files_and_our_layout(small, tmp_path):
    net, by_state = small
    model_file, mask_file = ticket_files.save_plain(net, by_state[4], tmp_path / "a" / "weights.pth", tmp_path / "b" / "m.pth")
    assert_exact_ticket(load_ticket(model_file, "small_resnet", mask=mask_file), by_state[4], net)
    for s in (2, 4):  # our layout under a tickets root
        level = masks.ticket_dir(tmp_path / "art", "imp", s)
        masks.save_tensors(level / "model.pth", {k: v * by_state[s].get(k, 1) for k, v in net.state_dict().items()})
        masks.save_tensors(level / "mask.pth", by_state[s])
        masks.save_json(level / "sparsity.json", {"density": masks.density(by_state[s])[0]})
    root = tmp_path / "art" / "tickets" / "imp"
    ticket = read_ticket(root, "small_resnet", state=4)
    assert ticket.format == "ours" and ticket.model_file.parent.name == "level_04"
    assert_exact_ticket((ticket.net, ticket.mask), by_state[4], net)
    assert_exact_ticket(load_ticket(root / "level_02", "small_resnet"), by_state[2], net)
    assert "pass state=S" in error_of(load_ticket, root, "small_resnet")


def test_resnet18_round_trip_and_missing_num_batches_tracked(tmp_path):
    torch.manual_seed(2)
    net = torchvision.models.resnet18(weights=None)
    mask = random_global_masks(net, [3])[3]
    ckpt, _ = ticket_files.save_rlt_format(net, mask, tmp_path, 3, "resnet18")
    state = torch.load(ckpt, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, ckpt)  # old PyTorch
    loaded_net, loaded_mask = load_ticket(tmp_path, "resnet18", state=3)
    assert all(int(b) == 0 for k, b in loaded_net.state_dict().items() if k.endswith("num_batches_tracked"))
    for key in mask:
        assert torch.equal(loaded_net.get_parameter(key), net.get_parameter(key) * mask[key])


# ---------------------------------------------------------------- densities

def test_density_conventions(small, tmp_path):
    net, by_state = small
    names = [n for n, _ in net.named_parameters() if n.endswith("weight") and _.dim() > 1]  # incl. stem and fc
    with_all = random_global_masks(net, [5], seed=9, names=names)[5]
    ticket_files.save_plain(net, with_all, tmp_path / "m.pth", tmp_path / "k.pth")
    ticket = read_ticket(tmp_path / "m.pth", "small_resnet", mask=tmp_path / "k.pth")
    convs = [n for n in names if n not in ("conv1.weight", "fc.weight")]
    expected_rlt = sum(float(with_all[n].sum()) for n in convs) / sum(with_all[n].numel() for n in convs)
    assert ticket.density_rlt == pytest.approx(expected_rlt, abs=1e-12)
    measured = ticket_densities(ticket.net, ticket.mask)
    assert measured["density"] == pytest.approx(ticket.density, abs=1e-5)
    assert measured["density_rlt"] == pytest.approx(expected_rlt, abs=1e-5)


def test_checkpoint_of_another_state_is_refused(small, tmp_path):
    net, by_state = small
    # checkpoint pruned at state 6, mask of state 4: kept weights are zero -> density too low
    ticket_files.save_plain(net, by_state[6], tmp_path / "m6.pth", tmp_path / "k6.pth")
    ticket_files.save_plain(net, by_state[4], tmp_path / "m4.pth", tmp_path / "k4.pth")
    ticket_files.save_plain(net, by_state[2], tmp_path / "m2.pth", tmp_path / "k2.pth")
    msg = error_of(load_ticket, tmp_path / "m6.pth", "small_resnet", mask=tmp_path / "k4.pth")
    assert "m6.pth" in msg and "measured density" in msg
    # checkpoint pruned at state 2 (denser, nested), mask of state 4: partly masked -> other mask
    msg = error_of(load_ticket, tmp_path / "m2.pth", "small_resnet", mask=tmp_path / "k4.pth")
    assert "m2.pth" in msg and "different mask" in msg


def test_declared_density_must_match(small, tmp_path):
    net, by_state = small
    ticket_files.save_open_lth_level(net, by_state[4], tmp_path, epoch=2)
    (tmp_path / "sparsity_report.json").write_text(json.dumps({"total": 100.0, "unpruned": 99.0}))
    assert "sparsity_report.json declares density 0.990000" in error_of(load_ticket, tmp_path, "small_resnet")


# ---------------------------------------------------------------- errors

def test_wrong_architecture(small, tmp_path):
    torch.manual_seed(0)
    r18 = torchvision.models.resnet18(weights=None)
    ticket_files.save_rlt_format(r18, masks.full_mask(r18), tmp_path, 0, "resnet50")
    msg = error_of(load_ticket, tmp_path, "resnet50", state=0)
    assert "resnet50_dyn4_0_checkpoint.pth" in msg and "'resnet50'" in msg and "looks like a resnet18" in msg
    net, by_state = small
    ticket_files.save_plain(net, by_state[4], tmp_path / "s.pth", tmp_path / "sk.pth")
    assert "s.pth does not match arch 'resnet18'" in error_of(load_ticket, tmp_path / "s.pth", "resnet18", mask=tmp_path / "sk.pth")


def test_key_and_shape_errors(small, tmp_path):
    net, by_state = small
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["layer1.0.conv1.weight"] = torch.zeros(16, 16, 5, 5)
    torch.save(state, tmp_path / "shape.pth")
    torch.save(by_state[4], tmp_path / "mask.pth.bin")
    msg = error_of(load_ticket, tmp_path / "shape.pth", "small_resnet", mask=tmp_path / "mask.pth.bin")
    assert "shape.pth" in msg and "'layer1.0.conv1.weight'" in msg and "(16, 16, 5, 5)" in msg and "(16, 16, 3, 3)" in msg
    state = {k: v for k, v in net.state_dict().items() if k != "layer2.0.bn1.running_var"}
    state["head.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "keys.pth")
    msg = error_of(load_ticket, tmp_path / "keys.pth", "small_resnet", mask=tmp_path / "mask.pth.bin")
    assert "keys.pth" in msg and "1 missing keys (layer2.0.bn1.running_var)" in msg and "1 unexpected keys (head.weight)" in msg


def test_mask_errors(small, tmp_path):
    net, by_state = small
    torch.save(net.state_dict(), tmp_path / "model.pth")
    half = dict(by_state[4], **{"layer1.0.conv2.weight": by_state[4]["layer1.0.conv2.weight"] * 0.5})
    torch.save(half, tmp_path / "half.pth")
    msg = error_of(load_ticket, tmp_path / "model.pth", "small_resnet", mask=tmp_path / "half.pth")
    assert "half.pth is not 0/1" in msg and "layer1.0.conv2.weight" in msg
    torch.save(dict(by_state[4], **{"layer9.conv.weight": torch.ones(2)}), tmp_path / "extra.pth")
    msg = error_of(load_ticket, tmp_path / "model.pth", "small_resnet", mask=tmp_path / "extra.pth")
    assert "extra.pth has keys not among small_resnet's parameters: layer9.conv.weight" in msg
    assert "holds no mask" in error_of(load_ticket, tmp_path / "model.pth", "small_resnet")


def test_non_finite_weights_at_pruned_positions(small, tmp_path):
    net, by_state = small
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["layer3.0.conv1.weight"][by_state[4]["layer3.0.conv1.weight"] == 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    torch.save(by_state[4], tmp_path / "k.pth")
    assert "nan.pth" in error_of(load_ticket, tmp_path / "nan.pth", "small_resnet", mask=tmp_path / "k.pth")


def test_file_and_directory_errors(small, tmp_path):
    net, by_state = small
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint at all")
    torch.save(by_state[4], tmp_path / "k.pth")
    msg = error_of(load_ticket, tmp_path / "broken.pth", "small_resnet", mask=tmp_path / "k.pth")
    assert msg.startswith(f"{tmp_path / 'broken.pth'} is not a weights file reprolib can load safely "
                          "(not a PyTorch weights file: ")
    ckpt, mask_file = ticket_files.save_rlt_format(net, by_state[4], tmp_path / "rlt", 4, "small_resnet")
    mask_file.unlink()
    msg = error_of(load_ticket, tmp_path / "rlt", "small_resnet", state=4)
    assert "missing file" in msg and "small_resnet_dyn4_4_mask.pth" in msg
    msg = error_of(load_ticket, tmp_path / "rlt", "small_resnet", state=5)
    assert "small_resnet_dyn4_5_checkpoint.pth" in msg and "level_05" in msg
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    msg = error_of(load_ticket, tmp_path / "empty", "resnet50")
    assert str(tmp_path / "empty") in msg and "looked for" in msg and "resnet50_dyn4_S_checkpoint.pth" in msg
    assert "missing ticket path" in error_of(load_ticket, tmp_path / "nowhere", "resnet50")
    msg = error_of(load_ticket, tmp_path, "no_such_backbone")
    assert "'no_such_backbone'" in msg and ", ".join(backbone_names()) in msg


# ---------------------------------------------------------------- the package API

def test_readme_api_is_exported_without_importing_torch(small, tmp_path):
    """The README's `reprolib.sparsity.load_ticket(...)` works, and `import reprolib.sparsity` stays light."""
    net, by_state = small
    ticket_files.save_rlt_format(net, by_state[4], tmp_path, 4, "small_resnet")
    assert_exact_ticket(reprolib.sparsity.load_ticket(tmp_path, arch="small_resnet", state=4), by_state[4], net)
    assert reprolib.sparsity.read_ticket(tmp_path, "small_resnet", state=4).format == "rlt"
    code = "import sys, reprolib.sparsity; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="has no attribute 'load_tickets'"):
        reprolib.sparsity.load_tickets  # noqa: B018 (a typo is an AttributeError, as usual)


def test_every_registered_backbone_is_an_arch():
    from reprolib.models import get_spec, names

    for name in names():
        spec = get_spec(name)
        net = build_network(name, device="meta")
        assert net.get_submodule(spec.classifier).out_features == spec.num_source_classes
    assert build_network("small_resnet", num_classes=3, device="meta").fc.out_features == 3
