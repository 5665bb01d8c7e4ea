"""Masks, IMP with rewinding, baselines, idempotence/resume, get_network, tickets CLI."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.models import get_backbone, torchvision_resnets
from reprolib.sparsity import masks as M
from reprolib.sparsity.cli import format_table, parse_levels
from reprolib.sparsity.imp import TicketMaker
from reprolib.sparsity.network import get_network
from reprolib.sparsity.recipe import TicketRecipe
from reprolib.sparsity.tickets import make_tickets
from reprolib.sparsity.upstream import SourceData, UpstreamRecipe, cpu_threads, train

FMNIST_RAW = Path("/usr/share/datasets/fashion-mnist")
LEVELS = [0, 1, 2, 3]


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def _raw_fmnist(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    # test-only fallback reader of the Debian idx files, for when reprolib.data is unavailable
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FMNIST_RAW / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(FMNIST_RAW / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return torch.from_numpy(images.astype(np.float32) / 255), torch.from_numpy(labels.astype(np.int64))


def tiny_fmnist(n_train: int = 256, n_test: int = 128) -> SourceData:
    try:
        from reprolib.data import get_dataset

        train_x, train_y = get_dataset("fashion_mnist", "train").tensors()
        test_x, test_y = get_dataset("fashion_mnist", "test").tensors()
        return SourceData(train_x[:n_train], train_y[:n_train], test_x[:n_test], test_y[:n_test])
    except (ImportError, ReprolibError):
        return SourceData(*_raw_fmnist("train", n_train), *_raw_fmnist("test", n_test))


def tiny_profile(artifacts: Path):
    upstream = {"epochs": 1, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0.0, "train_subset": 256,
                "test_subset": 128}
    return load_profile("smoke", artifacts=str(artifacts), upstream=upstream, tickets={"rewind_iteration": 2})


# ---- masks -----------------------------------------------------------------------------

def wide_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.Conv2d(64, 64, 3), nn.Flatten(), nn.Linear(400, 100))


def test_prunable_names_follow_exclude():
    net = wide_net()
    assert M.prunable_names(net, exclude=()) == ["0.weight", "1.weight", "3.weight"]
    assert M.prunable_names(net, exclude=("0.weight",)) == ["1.weight", "3.weight"]
    names = M.prunable_names(get_backbone("small_resnet", weights=None).net)
    assert "conv1.weight" not in names and "fc.weight" not in names
    assert "layer2.0.downsample.0.weight" in names and "layer1.0.conv1.weight" in names


def test_iterative_global_pruning_density_shrink_and_threshold():
    net = wide_net()
    mask = M.full_mask(net, exclude=())
    for level in range(1, 9):
        with torch.no_grad():  # new weights each level, as after retraining
            for p in net.parameters():
                p.normal_()
        M.apply_mask(net, mask)
        new = M.global_magnitude_prune(net, mask, 0.2)
        overall, per_layer = M.density(new)
        assert abs(overall - 0.8 ** level) < 1e-3
        assert all((new[k] <= mask[k]).all() for k in mask)           # masks only shrink
        params = dict(net.named_parameters())
        kept = torch.cat([params[k].detach().abs()[new[k] > 0] for k in new])
        pruned_now = torch.cat([params[k].detach().abs()[(mask[k] > 0) & (new[k] == 0)] for k in new])
        assert kept.min() >= pruned_now.max()                          # the threshold separates them
        assert len(set(per_layer.values())) > 1                        # global, not layer-wise
        mask = new


def test_magnitude_ties_are_deterministic():
    net = nn.Sequential(nn.Linear(10, 10, bias=False))
    nn.init.constant_(net[0].weight, 0.5)
    mask = M.global_magnitude_prune(net, M.full_mask(net, exclude=()), 0.3)
    flat = mask["0.weight"].flatten()
    assert flat[:30].sum() == 0 and flat[30:].sum() == 70  # ties go by position, lowest first


def test_random_prune_like_keeps_per_layer_counts():
    net = wide_net()
    mask = M.global_magnitude_prune(net, M.full_mask(net, exclude=()), 0.6)
    rand = M.random_prune_like(mask, seed=3)
    assert M.density(rand)[1] == pytest.approx(M.density(mask)[1], abs=0)
    assert any(not torch.equal(rand[k], mask[k]) for k in mask)
    assert all(torch.equal(a, b) for a, b in zip(rand.values(), M.random_prune_like(mask, seed=3).values()))


def test_density_rlt_counts_conv_except_stem():
    net = get_backbone("small_resnet", weights=None).net
    mask = {"layer1.0.conv1.weight": torch.zeros(16, 16, 3, 3), "fc.weight": torch.zeros(10, 128)}
    convs = [m.weight.numel() for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and n != "conv1"]
    assert M.density_rlt(net, mask) == pytest.approx(1 - 16 * 16 * 9 / sum(convs))


def test_atomic_save_load(tmp_path):
    mask = {"a": torch.ones(3)}
    M.save_tensors(tmp_path / "x" / "mask.pth", mask)
    assert torch.equal(M.load_tensors(tmp_path / "x" / "mask.pth")["a"], mask["a"])
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["mask.pth"]  # no temp files left
    with pytest.raises(ReprolibError):
        M.load_tensors(tmp_path / "missing.pth")


# ---- training honours masks -----------------------------------------------------------

def test_training_keeps_pruned_weights_zero_and_rewind_zero_is_init():
    data = tiny_fmnist(128, 16)
    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    init = {k: v.clone() for k, v in backbone.net.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    mask = {k: (torch.rand(v.shape, generator=generator) < 0.3).float() for k, v in M.full_mask(backbone.net).items()}
    recipe = UpstreamRecipe(epochs=1, batch_size=32, lr=0.1, weight_decay=5e-4)
    rewind = train(backbone, data.train_images, data.train_labels, recipe, mask=mask, rewind_iteration=0,
                   progress=False)
    params = dict(backbone.net.named_parameters())
    for name, keep in mask.items():
        assert (params[name][keep == 0] == 0).all()
        assert (params[name][keep > 0] != init[name][keep > 0]).any()  # it did train
    # iteration 0 = the initial weights with the mask applied (training starts masked)
    assert all(torch.equal(rewind[k], init[k] * mask[k] if k in mask else init[k]) for k in init)


# ---- IMP, baselines, idempotence ------------------------------------------------------

@pytest.fixture(scope="module")
def tickets(tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifacts")
    profile = tiny_profile(artifacts)
    data = tiny_fmnist()
    with cpu_threads(1):
        summaries = make_tickets(profile, LEVELS, ["imp", "magnitude", "random"], data=data, progress=False)
    return profile, data, summaries


def _ticket(profile, kind, level):
    d = M.ticket_dir(profile.path("artifacts"), kind, level)
    return M.load_tensors(d / "model.pth"), M.load_tensors(d / "mask.pth"), M.load_json(d / "sparsity.json")


@pytest.mark.slow
def test_imp_levels_density_shrink_threshold_zeros(tickets):
    profile, _, summaries = tickets
    assert [(s["kind"], s["level"]) for s in summaries] == \
        [("imp", l) for l in LEVELS] + [("magnitude", l) for l in LEVELS[1:]] + [("random", l) for l in LEVELS[1:]]
    previous = None
    for level in LEVELS:
        state, mask, report = _ticket(profile, "imp", level)
        assert abs(report["density"] - 0.8 ** level) < 1e-3 and abs(M.density(mask)[0] - 0.8 ** level) < 1e-3
        assert report["level"] == level and report["kind"] == "imp" and 0 <= report["upstream_test_accuracy"] <= 1
        assert set(mask) == set(M.prunable_names(get_network(profile)[0].net))
        for name, keep in mask.items():
            assert (state[name][keep == 0] == 0).all()                        # saved weights are masked
        if previous is not None:
            prev_state, prev_mask, _ = previous
            assert all((mask[k] <= prev_mask[k]).all() for k in mask)        # masks only shrink
            kept = torch.cat([prev_state[k].abs()[mask[k] > 0] for k in mask])
            pruned = torch.cat([prev_state[k].abs()[(prev_mask[k] > 0) & (mask[k] == 0)] for k in mask])
            assert kept.min() >= pruned.max()                                # pruned by trained |w|
            assert report["parent"] == f"tickets/imp/level_{level - 1:02d}"
        previous = (state, mask, report)


@pytest.mark.slow
def test_rewinding_restores_rewind_point(tickets):
    profile, data, _ = tickets
    maker = TicketMaker(profile, data=data, progress=False)
    _, mask, _ = _ticket(profile, "imp", 3)
    rewind = M.load_tensors(M.ticket_dir(profile.path("artifacts"), "imp", 0) / "rewind.pth")
    dense_state, _, _ = _ticket(profile, "imp", 0)
    rewound = maker.rewind(mask).net.state_dict()
    for name, value in rewind.items():
        expected = value * mask[name] if name in mask else value
        assert torch.equal(rewound[name], expected)
    name = "layer3.0.conv2.weight"
    assert not torch.equal(rewind[name], dense_state[name])  # rewinding is not "keep trained weights"


@pytest.mark.slow
def test_baselines_match_densities(tickets):
    profile, _, _ = tickets
    _, imp_mask, _ = _ticket(profile, "imp", 3)
    state, rand_mask, rand_report = _ticket(profile, "random", 3)
    assert M.density(rand_mask)[1] == M.density(imp_mask)[1]                # same per-layer densities
    assert any(not torch.equal(rand_mask[k], imp_mask[k]) for k in imp_mask)
    _, mag_mask, mag_report = _ticket(profile, "magnitude", 3)
    assert abs(mag_report["density"] - 0.8 ** 3) < 1e-3 and mag_report["parent"] == "tickets/imp/level_00"
    dense_state, _, _ = _ticket(profile, "imp", 0)
    kept = torch.cat([dense_state[k].abs()[mag_mask[k] > 0] for k in mag_mask])
    pruned = torch.cat([dense_state[k].abs()[mag_mask[k] == 0] for k in mag_mask])
    assert kept.min() >= pruned.max()                                        # one-shot on the dense model
    assert rand_report["kind"] == "random" and all((state[k][rand_mask[k] == 0] == 0).all() for k in rand_mask)


@pytest.mark.slow
def test_idempotent_and_resume_is_deterministic(tickets):
    profile, data, _ = tickets
    root = profile.path("artifacts") / "tickets"
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*.pth")}
    maker = TicketMaker(profile, data=data, progress=False)
    for kind in ("imp", "magnitude", "random"):
        for level in LEVELS[1:] if kind != "imp" else LEVELS:
            assert maker.level(kind, level)["status"] == "existing"
    assert maker.made == [] and mtimes == {p: p.stat().st_mtime_ns for p in root.rglob("*.pth")}

    old_state, old_mask, _ = _ticket(profile, "imp", 3)
    level3 = M.ticket_dir(profile.path("artifacts"), "imp", 3)
    (level3 / "sparsity.json").unlink()                         # an interrupted level: files but no report
    maker = TicketMaker(profile, data=data, progress=False)
    summaries = [maker.level("imp", level) for level in LEVELS]
    assert maker.made == [("imp", 3)] and [s["status"] for s in summaries] == ["existing"] * 3 + ["made"]
    new_state, new_mask, _ = _ticket(profile, "imp", 3)
    assert all(torch.equal(new_mask[k], old_mask[k]) for k in old_mask)
    assert all(torch.equal(new_state[k], old_state[k]) for k in old_state)  # same seed, same numbers


@pytest.mark.slow
def test_changed_recipe_is_refused(tickets):
    profile, data, _ = tickets
    changed = load_profile("smoke", artifacts=profile.artifacts, upstream={**profile.upstream, "lr": 0.2},
                           tickets=profile.tickets)
    with pytest.raises(ReprolibError, match="upstream.lr=0.05"):
        TicketMaker(changed, data=data, progress=False).level("imp", 0)


@pytest.mark.slow
def test_get_network_dense_and_lt(tickets):
    profile, _, _ = tickets
    dense, info = get_network(profile)
    assert info.kind == "dense" and info.level == 0 and info.density == 1.0 and info.density_rlt == 1.0
    backbone, info = get_network(profile, network="LT", kind="imp", level=2)
    state, mask, report = _ticket(profile, "imp", 2)
    assert info.density == report["density"] and info.density_rlt == report["density_rlt"] < 1
    assert info.kind == "imp" and info.level == 2 and info.path.endswith("level_02")
    assert all(torch.equal(backbone.net.state_dict()[k], v) for k, v in state.items())
    # a downstream use (frozen backbone, gradient to the input) leaves pruned weights at zero
    backbone.requires_grad_(False)
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    backbone(backbone.normalize(x)).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    params = dict(backbone.net.named_parameters())
    assert all((params[k][mask[k] == 0] == 0).all() for k in mask)
    _, info = get_network(profile, network="LT", kind="random", level=0)
    assert info.kind == "dense"                                  # a level-0 baseline is the dense model


def test_missing_ticket_says_how_to_make_it(tmp_path):
    profile = tiny_profile(tmp_path)
    with pytest.raises(ReprolibError, match="python -m reprolib tickets --profile smoke"):
        get_network(profile, network="LT", kind="imp", level=4)
    with pytest.raises(ReprolibError, match="valid choices"):
        get_network(profile, network="sparse")


def test_recipes_refuse_unknown_keys_and_bad_values():
    profile = load_profile("smoke", upstream={"epochz": 3})
    with pytest.raises(ReprolibError, match="epochz"):
        UpstreamRecipe.for_profile(profile)
    with pytest.raises(ReprolibError, match="optimizer"):
        UpstreamRecipe.for_profile(load_profile("smoke", upstream={"optimizer": "lion"}))
    with pytest.raises(ReprolibError, match="prune_fraction"):
        TicketRecipe.for_profile(load_profile("smoke", tickets={"prune_fraction": 1.5}))
    with pytest.raises(ReprolibError, match="upstream.epochs is float 2.5; valid: an integer"):
        UpstreamRecipe.for_profile(load_profile("smoke", upstream={"epochs": 2.5}))
    with pytest.raises(ReprolibError, match=r"tickets.exclude\[1\] is int 3; valid: a string"):
        TicketRecipe.for_profile(load_profile("smoke", tickets={"exclude": ["fc.weight", 3]}))
    assert UpstreamRecipe.for_profile(load_profile("embedded")) == UpstreamRecipe()


def test_recipes_are_the_profile_values_on_the_dataclass_defaults():
    """Each number is written in the profile YAML; nothing is chosen by the profile's name."""
    smoke, embedded, paper = (load_profile(name) for name in ("smoke", "embedded", "paper"))
    assert UpstreamRecipe.for_profile(smoke) == UpstreamRecipe(
        epochs=2, batch_size=64, lr=0.05, optimizer="sgd", momentum=0.9, weight_decay=0.0005, schedule="cosine",
        warmup_epochs=0.2, augment="flip", seed=0, train_subset=4096, test_subset=2000, eval_batch_size=1000,
        num_threads=1)
    assert TicketRecipe.for_profile(smoke) == TicketRecipe(
        prune_fraction=0.2, rewind_iteration=10, retrain_epochs=-1, exclude=["conv1.weight", "fc.weight"],
        random_seed=0)
    assert UpstreamRecipe.for_profile(embedded) == UpstreamRecipe(
        epochs=4, batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=0.0005, schedule="cosine",
        warmup_epochs=0.5, augment="flip", seed=0, train_subset=-1, test_subset=-1, eval_batch_size=1000,
        num_threads=0)
    assert TicketRecipe.for_profile(embedded) == TicketRecipe(
        prune_fraction=0.2, rewind_iteration=200, retrain_epochs=2, exclude=["conv1.weight", "fc.weight"],
        random_seed=0)
    # the paper profile writes no making recipe (the dataclass defaults), only its ImageNet
    # recipe and (none yet) imported tickets, which making_dict() leaves out
    assert paper.upstream == {} and set(paper.tickets) == {"imported", "imagenet"}
    paper_recipe = TicketRecipe.for_profile(paper)
    assert paper_recipe.making_dict() == TicketRecipe().making_dict() and TicketRecipe().rewind_iteration == 200
    assert paper_recipe.imagenet["name"] == "gmp-finetune-2ep" and "imagenet" not in paper_recipe.making_dict()
    # a profile named smoke gets nothing the YAML does not say
    renamed = load_profile("smoke", upstream={}, tickets={})
    assert UpstreamRecipe.for_profile(renamed) == UpstreamRecipe() and TicketRecipe.for_profile(renamed) == TicketRecipe()


def test_cli_levels_and_errors(capsys):
    assert parse_levels("0-8") == list(range(9)) and parse_levels("0,2,4") == [0, 2, 4]
    assert parse_levels("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(ReprolibError, match="levels"):
        parse_levels("a-b")
    from reprolib.cli import main

    assert main(["tickets", "--profile", "smoke", "--kinds", "imp,lottery"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "lottery" in err and err.count("\n") == 1
    assert main(["upstream", "--profile", "paper"]) == 2   # pretrained weights: nothing to train here
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uses pretrained resnet50 weights" in err and "trained here: small_resnet" in err
    table = format_table([{"kind": "imp", "level": 2, "density_target": 0.64, "density": 0.64, "density_rlt": 0.63,
                           "upstream_test_accuracy": 0.9, "train_seconds": 1.0, "status": "made"}])
    assert "0.6400" in table and "imp" in table


@pytest.mark.slow
def test_paper_profile_without_tickets_prunes_imagenet_weights_one_shot(tmp_path, monkeypatch):
    torch.manual_seed(0)
    fake_imagenet = get_backbone("resnet18", weights=None).net.state_dict()  # stands in for the download
    monkeypatch.setattr(torchvision_resnets, "torchvision_state_dict",
                        lambda name, weights, root=None, download=False: fake_imagenet)
    profile = load_profile("paper", backbone="resnet18", artifacts=str(tmp_path), download=False)
    dense, info = get_network(profile)
    assert info.id == "resnet18-imagenet-dense"
    assert info.kind == "dense" and torch.equal(dense.net.layer1[0].conv1.weight, fake_imagenet["layer1.0.conv1.weight"])
    pruned, info = get_network(profile, network="LT", kind="imp", level=2)
    assert info.kind == "magnitude" and abs(info.density - 0.64) < 1e-3   # honest: not an IMP ticket
    assert info.id == "resnet18-imagenet-magnitude-oneshot-L02"
    weights = pruned.net.layer1[0].conv1.weight
    assert (weights == 0).any() and torch.equal(weights[weights != 0], fake_imagenet["layer1.0.conv1.weight"][weights != 0])
    _, info = get_network(profile, network="LT", kind="random", level=2)
    assert info.kind == "random" and abs(info.density - 0.64) < 1e-3
