"""A run's id is the hash of exactly what it uses: remade or newly made tickets re-run exactly the
runs on them (0 stale records), two names of one network are one run, and a new hyperparameter of
one method changes no other method's run ids."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch

from reprolib.sparsity import masks as M

pytestmark = pytest.mark.usefixtures("one_thread")
SMOKE = Path(__file__).parents[1] / "reprolib" / "profiles" / "smoke.yaml"


@pytest.fixture(scope="module")
def own_smoke(tmp_path_factory):
    """A copy of the smoke profile whose artifacts (tickets, runs) are this module's own, with the
    dense model and IMP level 1 made (each test compares ids before and after its own change)."""
    from reprolib.config import load_profile
    from reprolib.sparsity import make_tickets

    tmp_path = tmp_path_factory.mktemp("own_smoke")

    text = SMOKE.read_text().replace("profile: smoke", "profile: smoke_identity")
    text = text.replace("artifacts: artifacts/smoke", f"artifacts: {tmp_path / 'artifacts'}")
    file = tmp_path / "smoke_identity.yaml"
    file.write_text(text)
    profile = load_profile(str(file))
    make_tickets(profile, levels=[0, 1], kinds=["imp"], progress=False)
    return profile


def _configs(profile_name: str, runs: Path):
    from reprolib.transfer.config import TransferConfig

    base = dict(profile=profile_name, target="digits", n_shot=5, epochs=1, device="cpu", results_path=str(runs),
                progress=False)
    networks = [("dense", "imp", 0), ("LT", "imp", 1)]
    return [TransferConfig(method=method, network=network, kind=kind, level=level, **base)
            for method, (network, kind, level) in itertools.product(("lp", "vp"), networks)]


def _rewrite_weights(directory: Path, change) -> None:
    """A ticket remade with other weights: same files, same sizes, other numbers."""
    state = torch.load(directory / "model.pth", weights_only=True)
    change(state)
    M.save_tensors(directory / "model.pth", state)
    M.save_report(directory, M.load_json(directory / "sparsity.json"))


def test_remade_tickets_rerun_exactly_the_runs_on_them(own_smoke, tmp_path):
    from reprolib.transfer.run import record_path, run_transfer

    configs = _configs(own_smoke.profile, tmp_path / "runs")
    first = {i: run_transfer(c) for i, c in enumerate(configs)}
    level_1 = M.ticket_dir(own_smoke.path("artifacts"), "imp", 1)
    first_conv = next(name for name, t in torch.load(level_1 / "model.pth", weights_only=True).items() if t.dim() == 4)
    _rewrite_weights(level_1, lambda state: state[first_conv].mul_(1.5))   # other features, other logits
    second = {i: run_transfer(c) for i, c in enumerate(configs)}
    for i, config in enumerate(configs):
        reran = first[i]["id"] != second[i]["id"]
        assert reran == (config.level == 1), (config.method, config.level)
        assert record_path(config).stem == second[i]["id"]
    for i, config in enumerate(configs):                      # every run on level 1 has new numbers
        if config.level == 1:
            assert second[i]["metrics"]["nll"] != first[i]["metrics"]["nll"]


def test_the_ledger_sets_aside_records_of_a_remade_network(own_smoke, capsys):
    """The issue's failure: after tickets are remade the ledger paired the new network's upstream
    accuracy with the old network's transfer numbers. Now those records are named and moved aside."""
    from reprolib.study.ledger import build_ledger
    from reprolib.sweep.status import run_states
    from reprolib.transfer.run import run_transfer

    artifacts = own_smoke.path("artifacts")
    configs = [c.replace(results_path=None) for c in _configs(own_smoke.profile, artifacts / "runs")]
    old = [run_transfer(c)["id"] for c in configs]
    assert sorted(build_ledger(artifacts)["id"]) == sorted(old)
    _rewrite_weights(M.ticket_dir(artifacts, "imp", 1), lambda state: state["fc.bias"].add_(1.0))
    states = run_states(artifacts / "runs")          # sweep_status: the level-1 runs are no longer finished
    assert sorted(key[4] for key in states) == [0, 0]
    ledger = build_ledger(artifacts)
    assert sorted(ledger["id"]) == sorted(i for i, c in zip(old, configs) if c.level == 0)
    assert capsys.readouterr().err.count("has been remade since the run") == 2
    assert len(list((artifacts / "runs").glob("*.bad.json"))) == 2
    new = [run_transfer(c)["id"] for c in configs]            # the next sweep reruns exactly those two
    assert sorted(build_ledger(artifacts)["id"]) == sorted(new) and len(set(new) - set(old)) == 2


def test_two_names_of_one_network_are_one_run(own_smoke, tmp_path):
    from reprolib.transfer.run import record_path

    dense, *_ = _configs(own_smoke.profile, tmp_path)
    as_level_0 = dense.replace(network="LT", kind="random", level=0)   # the grid's random L0 is the dense model
    assert record_path(dense) == record_path(as_level_0)


def test_a_new_hyperparameter_of_one_method_changes_no_other_methods_ids(own_smoke, tmp_path, monkeypatch):
    from reprolib.prompts import kinds
    from reprolib.protocols import Hyperparameters
    from reprolib.transfer import registry
    from reprolib.transfer import run as run_module
    from reprolib.transfer.config import TransferConfig

    configs = [TransferConfig(profile=own_smoke.profile, target="digits", method=m, device="cpu",
                              results_path=str(tmp_path)) for m in registry.names()]
    before = {c.method: run_module.record_path(c).stem for c in configs}

    # A new SMM-only number, added where SMM's numbers live: its entry.
    smm = registry.get("smm")
    extended = smm.hparams + Hyperparameters({"smm_mask_temperature": 0.5})
    monkeypatch.setitem(registry._SPECS, "smm", dataclasses.replace(smm, hparams=extended))
    monkeypatch.setitem(kinds._KINDS, "smm", dataclasses.replace(kinds.get_kind("smm"), hparams=extended))
    after = {c.method: run_module.record_path(c).stem for c in configs}
    assert {m for m in before if before[m] != after[m]} == {"smm"}


def test_real_tickets_made_after_a_one_shot_sweep_change_exactly_those_networks(tmp_path):
    """imagenet-lite prunes its pretrained weights once at load; `tickets prune --imagenet` later writes
    real IMP levels, which get_network then loads: their fingerprint changes, no other's does."""
    from reprolib.config import load_profile
    from reprolib.sparsity.identity import network_fingerprint
    from reprolib.sparsity.network import get_network

    profile = load_profile("smoke-lite", artifacts=str(tmp_path / "artifacts"))
    names = [("dense", "imp", 0), ("LT", "imp", 2), ("LT", "magnitude", 2), ("LT", "random", 2), ("LT", "imp", 1)]
    before = {n: network_fingerprint(profile, *n, None) for n in names}
    assert before[("LT", "imp", 2)] == before[("LT", "magnitude", 2)]        # both the one-shot L2
    assert before[("LT", "random", 2)] != before[("LT", "magnitude", 2)]
    backbone, _ = get_network(profile, "LT", "magnitude", 2)                   # "made on ImageNet": L2
    directory = M.ticket_dir(profile.path("artifacts"), "imp", 2)
    directory.mkdir(parents=True)
    state = backbone.net.state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 0.01                # retrained: other numbers
    M.save_tensors(directory / "model.pth", state)
    M.save_tensors(directory / "mask.pth", M.full_mask(backbone.net))
    M.save_report(directory, {"density": 1.0, "density_rlt": 1.0})
    after = {n: network_fingerprint(profile, *n, None) for n in names}
    assert {n for n in names if before[n] != after[n]} == {("LT", "imp", 2)}
    assert after[("LT", "imp", 2)]["provenance"] == "here"
