"""Ticket replicates as a design dimension: the folders, the profile fields, the grid's
(replicate, seed) units, IMP replicates (other retraining seeds from the same dense model, or
their own dense model), the same tickets from one process or two, and the ledger's column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reprolib import paths
from reprolib.config import REPLICATE_SEED_STRIDE, load_profile, replicate_seed
from reprolib.errors import ReprolibError
from reprolib.sparsity import masks as M
from reprolib.sparsity.imp import make_imp_tickets
from reprolib.sparsity.network import get_network
from reprolib.sparsity.upstream import cpu_threads
from reprolib.study.ledger import build_ledger, tickets_table
from reprolib.sweep.runner import build_grid
from synthetic_study import write_synthetic_study


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def tiny(artifacts: Path, **tickets):
    upstream = {"epochs": 1, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0.0, "train_subset": 256,
                "test_subset": 128}
    return load_profile("smoke", artifacts=str(artifacts), upstream=upstream, replicates=3,
                        tickets={"rewind_iteration": 2, **tickets})


def test_ticket_folders_of_replicates(tmp_path: Path) -> None:
    assert paths.ticket_dir(tmp_path, "imp", 4) == tmp_path / "tickets" / "imp" / "level_04"
    assert paths.ticket_dir(tmp_path, "imp", 4, 3) == tmp_path / "tickets" / "replicate_03" / "imp" / "level_04"
    for kind, level, replicate in [("imp", 0, 1), ("imp", 2, 1), ("imp", 2, 2), ("random", 2, 1)]:
        folder = paths.ticket_dir(tmp_path, kind, level, replicate)
        folder.mkdir(parents=True)
        (folder / "sparsity.json").write_text("{}")
    found = paths.ticket_dirs(tmp_path)
    assert [(paths.ticket_of(d), paths.replicate_of(d)) for d in found] == \
        [(("imp", 0), 1), (("imp", 2), 1), (("random", 2), 1), (("imp", 2), 2)]


def test_profile_replicate_fields_are_checked() -> None:
    with pytest.raises(ReprolibError, match="profile replicates is int 0; valid: >= 1"):
        load_profile("embedded", replicates=0)
    with pytest.raises(ReprolibError, match="pruned once from pretrained weights"):
        load_profile("paper", replicates=2)                           # one-shot networks are deterministic
    with pytest.raises(ReprolibError, match="seed 1000 is >= 1000"):
        load_profile("embedded", replicates=2, seeds=[1, 1000])
    block = {"methods": ["lp"], "levels": [0, 8], "n_shots": [-1], "seeds": 2}
    with pytest.raises(ReprolibError, match="subgrid level 3 is not one of the profile's"):
        load_profile("embedded", subgrids=[block | {"levels": [0, 3]}])
    with pytest.raises(ReprolibError, match="subgrid target 'cifar10' is not one of the profile's"):
        load_profile("embedded", subgrids=[block | {"targets": ["cifar10"]}])
    with pytest.raises(ReprolibError, match="replicates 1 .. 2"):
        load_profile("embedded", replicates=2, subgrids=[block | {"replicates": 3}])
    with pytest.raises(ReprolibError, match="subgrid key 'seeds' is missing"):
        load_profile("embedded", subgrids=[{k: v for k, v in block.items() if k != "seeds"}])
    with pytest.raises(ReprolibError, match="unknown subgrid key 'seed'"):
        load_profile("embedded", subgrids=[block | {"seed": 2}])


def test_grid_runs_the_subgrids_on_every_replicate_with_seeds_of_their_own() -> None:
    block = {"methods": ["lp", "vp/ilm"], "levels": [0, 8], "n_shots": [1, -1], "seeds": 4}
    profile = load_profile("embedded", replicates=3, subgrids=[block, block | {"methods": ["smm/ilm"], "seeds": 2,
                                                                                "replicates": 2, "targets": ["digits"]}])
    base = build_grid(load_profile("embedded", replicates=1, subgrids=[]))
    grid = build_grid(profile)
    assert grid[:len(base)] == base                                   # replicate 1's grid first, unchanged
    extra = grid[len(base):]
    keys = [(c.target, c.method, c.label_map, c.network, c.kind, c.level, c.replicate, c.n_shot, c.seed) for c in grid]
    assert len(set(keys)) == len(keys)                                 # a run listed once
    cells = [c for c in grid if c.method in ("lp", "vp") and c.kind == "imp" and c.level in (0, 8) and c.n_shot in (1, -1)]
    assert {(c.replicate, c.seed) for c in cells} == {(r, replicate_seed(s, r)) for r in (1, 2, 3) for s in (1, 2, 3, 4)}
    assert replicate_seed(2, 3) == 2 + 2 * REPLICATE_SEED_STRIDE
    lp_vp = [c for c in extra if c.method in ("lp", "vp")]
    # 3 replicates x 4 seeds x 2 targets x 2 arms x 2 networks x 2 shots, less replicate 1's seeds 1-3 the grid has
    assert len(lp_vp) == 3 * 4 * 2 * 2 * 2 * 2 - 3 * 2 * 2 * 2 * 2
    smm = [c for c in extra if c.method == "smm"]
    assert {c.target for c in smm} == {"digits"} and {c.replicate for c in smm} == {2}   # replicate 1: in the grid
    assert {(c.network, c.kind) for c in extra} == {("dense", "imp"), ("LT", "imp")}


def test_imp_replicates_share_the_dense_model_and_differ_after_it(tmp_path: Path) -> None:
    profile = tiny(tmp_path)
    reports = make_imp_tickets(profile, [0, 1, 2], replicates=(1, 2))
    assert [(r["replicate"], r["level"]) for r in reports] == [(1, 0), (1, 1), (1, 2), (2, 1), (2, 2)]
    one, two = (lambda lv: M.ticket_dir(tmp_path, "imp", lv, 1)), (lambda lv: M.ticket_dir(tmp_path, "imp", lv, 2))
    assert not (M.ticket_dir(tmp_path, "imp", 0, 2)).exists()          # replicate 2 starts from replicate 1's dense model
    load = M.load_tensors
    # level 1 prunes the same trained dense weights: the same mask; retrained with another seed: other weights
    assert all(torch.equal(load(one(1) / "mask.pth")[k], load(two(1) / "mask.pth")[k]) for k in load(one(1) / "mask.pth"))
    assert not torch.equal(load(one(1) / "model.pth")["fc.weight"], load(two(1) / "model.pth")["fc.weight"])
    assert any(not torch.equal(load(one(2) / "mask.pth")[k], load(two(2) / "mask.pth")[k])
               for k in load(one(2) / "mask.pth"))                    # level 2 prunes other weights
    report = json.loads((two(2) / "sparsity.json").read_text())
    assert report["recipe"]["replicate"] == {"replicate": 2, "own_dense": False}
    assert report["recipe"]["upstream"]["seed"] == replicate_seed(0, 2)
    _, info = get_network(profile, "LT", "imp", 2, replicate=2)
    assert info.id.endswith("-imp-L02-r02") and info.upstream_accuracy == report["upstream_test_accuracy"]
    assert get_network(profile, replicate=2)[1].id == get_network(profile)[1].id   # the one dense model
    table = tickets_table(tmp_path)
    assert table[["ticket_kind", "level", "replicate"]].values.tolist() == \
        [["imp", 0, 1], ["imp", 1, 1], ["imp", 2, 1], ["imp", 1, 2], ["imp", 2, 2]]
    assert (table["train_seconds"] > 0).all() and (table["train_cpu_seconds"] > 0).all()
    with pytest.raises(ReprolibError, match="--replicates 3"):          # a replicate not made: how to make it
        get_network(profile, "LT", "imp", 1, replicate=3)


def test_replicates_from_two_processes_are_the_tickets_of_one(tmp_path: Path) -> None:
    """Parallel replicate making (spawned workers, one torch thread each) gives the same tensors as
    one process, tensor for tensor: a replicate's numbers do not depend on how it was made."""
    serial, parallel = tiny(tmp_path / "serial"), tiny(tmp_path / "parallel")
    make_imp_tickets(serial, [0, 1], replicates=(1, 2, 3))
    make_imp_tickets(parallel, [0, 1], replicates=(1, 2, 3), workers=2)
    for replicate in (1, 2, 3):
        a = M.load_tensors(M.ticket_dir(tmp_path / "serial", "imp", 1, replicate) / "model.pth")
        b = M.load_tensors(M.ticket_dir(tmp_path / "parallel", "imp", 1, replicate) / "model.pth")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_replicates_with_their_own_dense_model(tmp_path: Path) -> None:
    profile = tiny(tmp_path, replicate_upstream=True)
    make_imp_tickets(profile, [0, 1], replicates=(1, 2))
    dense_two = M.ticket_dir(tmp_path, "imp", 0, 2)
    assert M.is_complete(dense_two)                                    # another upstream seed: another dense model
    assert not torch.equal(M.load_tensors(dense_two / "model.pth")["fc.weight"],
                           M.load_tensors(M.ticket_dir(tmp_path, "imp", 0) / "model.pth")["fc.weight"])
    assert get_network(profile, replicate=2)[1].id.endswith("-dense-r02")


def test_ledger_carries_the_replicate_and_each_ticket_its_upstream(tmp_path: Path) -> None:
    write_synthetic_study(tmp_path, arms=("lp",), levels=(0, 2), seeds=(1, 2), replicates=2)
    (paths.ticket_dir(tmp_path, "imp", 2, 2) / "sparsity.json").write_text(json.dumps(
        {"density": 0.64, "density_rlt": 0.65, "upstream_test_accuracy": 0.777}))
    ledger = build_ledger(tmp_path)
    assert "replicate" in ledger.columns and set(ledger["replicate"]) == {1, 2}
    assert set(ledger.loc[ledger["replicate"] == 2, "seed"]) == {1001, 1002}
    ticket_two = ledger[(ledger["replicate"] == 2) & (ledger["level"] == 2)]
    assert set(ticket_two["upstream_accuracy"]) == {0.777}
    dense_two = ledger[(ledger["replicate"] == 2) & (ledger["level"] == 0)]   # on replicate 1's dense model
    assert set(dense_two["upstream_accuracy"]) == {0.90}
