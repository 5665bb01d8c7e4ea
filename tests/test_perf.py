"""Issue 13 (performance): the evaluation schedule, the LP feature cache and grouped runs.

Each test checks that the faster path gives the numbers of the plain one (bit for bit where
the computation is the same, within a stated tolerance where batches are concatenated) and
that it really does less work (counted calls, never timed).
"""

from __future__ import annotations

import pytest
import torch

from reprolib.errors import ReprolibError
from reprolib.protocols import eval_schedule, get_protocol
from reprolib.transfer.registry import get as get_method
from reprolib.transfer.registry import method_hparams
from reprolib.transfer.train import evaluate as REAL_EVALUATE

pytestmark = pytest.mark.usefixtures("one_thread")


def test_eval_schedule_every_tenth_and_always_the_last_epoch():
    assert eval_schedule(0.1, 100) == list(range(10, 101, 10))
    assert eval_schedule(0.1, 200) == list(range(20, 201, 20))
    assert eval_schedule(0.1, 8) == list(range(1, 9))           # a tenth of 8 epochs: every one
    assert get_protocol("embedded").eval_epochs(8) == [2, 4, 6, 8]
    assert eval_schedule(0.3, 10) == [3, 6, 9, 10]              # the last epoch is always evaluated
    assert eval_schedule(1.0, 7) == [7]
    assert get_protocol("rlt").eval_epochs(100) == list(range(10, 101, 10))
    with pytest.raises(ReprolibError, match="eval_fraction"):
        get_protocol("smoke", eval_fraction=0.0)


def _digits_context(backbone, label_map=None, epochs=6, seed=5):
    from reprolib.data import info
    from reprolib.transfer.method import MethodContext

    return MethodContext(backbone=backbone, target=info("digits"), protocol=get_protocol("smoke"),
                         epochs=epochs, seed=seed, label_map=label_map)


def _tiny_splits(with_val=False):
    from reprolib.transfer.train import Splits

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(120, 1, 28, 28, generator=gen), torch.randint(0, 10, (120,), generator=gen)
    val = (x[96:], y[96:]) if with_val else None
    return Splits(train=(x[:64], y[:64]), test=(x[64:96], y[64:96]), val=val)


def _fit_counting(monkeypatch, method, splits, settings):
    import reprolib.transfer.train as train

    calls = []
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: calls.append(len(a[1])) or REAL_EVALUATE(*a, **k))
    return train.fit(method, splits, settings), calls


@pytest.mark.parametrize("kind,label_map", [("vp", "ilm"), ("lp", None), ("smm", "ilm"), ("full", "ilm")])
def test_sparse_evaluation_gives_the_same_final_state_and_logits(monkeypatch, kind, label_map):
    from reprolib.models import get_backbone
    from reprolib.transfer.registry import build_method
    from reprolib.transfer.train import FitSettings

    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    outcomes = []
    for eval_epochs in (None, (3, 6)):
        method = build_method(kind, _digits_context(backbone, label_map))
        settings = FitSettings(epochs=6, batch_size=16, test_batch_size=32, seed=5, eval_epochs=eval_epochs)
        result, calls = _fit_counting(monkeypatch, method, _tiny_splits(), settings)
        outcomes.append((result, method.learned_state(), calls))
    (every, every_state, every_calls), (sparse, sparse_state, sparse_calls) = outcomes
    assert len(every_calls) == 6 and len(sparse_calls) == 2          # test evaluated 6 times vs twice
    assert torch.equal(every.test_logits, sparse.test_logits)        # the reported logits: bit for bit
    assert all(torch.equal(every_state[k], sparse_state[k]) for k in every_state)
    assert sparse.curves["eval_epoch"] == [3, 6] and every.curves["eval_epoch"] == [1, 2, 3, 4, 5, 6]
    assert sparse.curves["test_accuracy"] == [every.curves["test_accuracy"][2], every.curves["test_accuracy"][5]]
    assert sparse.curves["train_loss"] == every.curves["train_loss"] and len(sparse.curves["epoch"]) == 6


def test_validation_follows_the_schedule_and_selects_only_evaluated_epochs(monkeypatch):
    from reprolib.models import get_backbone
    from reprolib.transfer.registry import build_method
    from reprolib.transfer.train import FitSettings

    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    method = build_method("lp", _digits_context(backbone))
    settings = FitSettings(epochs=6, batch_size=16, test_batch_size=32, seed=5, eval_epochs=(2, 4))
    result, calls = _fit_counting(monkeypatch, method, _tiny_splits(with_val=True), settings)
    assert result.curves["eval_epoch"] == [2, 4, 6] and len(result.curves["val_accuracy"]) == 3
    assert result.selected_epoch + 1 in (2, 4, 6)
    assert calls.count(24) == 3                                       # val (24 images) only at 2, 4, 6


def test_lp_features_computed_once_per_network_and_images_and_bit_identical(tmp_path):
    from reprolib.models import get_backbone
    from reprolib.transfer.feature_cache import FeatureStore, feature_key
    from reprolib.transfer.linear_probe import LinearProbe
    from reprolib.transfer.method import MethodContext
    from reprolib.transfer.train import FitSettings, fit

    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    splits = _tiny_splits()
    settings = FitSettings(epochs=2, batch_size=16, test_batch_size=32, seed=5)
    lp = MethodContext(**{**_digits_context(backbone, epochs=2).__dict__,
                          "hparams": method_hparams(get_method("lp"), get_protocol("smoke"))})
    plain = LinearProbe(lp)
    plain_result = fit(plain, splits, settings)

    store = FeatureStore(tmp_path / "features")
    ctx = MethodContext(**{**lp.__dict__, "feature_store": store})
    for seed in (5, 6):   # two runs (another seed): the second computes nothing new
        fit(LinearProbe(ctx), splits, FitSettings(epochs=2, batch_size=16, test_batch_size=32, seed=seed))
        assert store.computed == 2                                    # train split + test split, once
    assert len(list((tmp_path / "features").glob("*.pt"))) == 2
    assert not list((tmp_path / "features").glob(".*"))              # no temp file left behind

    fresh = FeatureStore(tmp_path / "features")                      # another process: from disk
    cached = LinearProbe(MethodContext(**{**ctx.__dict__, "feature_store": fresh}))
    cached_result = fit(cached, splits, settings)
    assert fresh.computed == 0
    assert torch.equal(plain_result.test_logits, cached_result.test_logits)
    assert torch.equal(plain.learned_state()["head.weight"], cached.learned_state()["head.weight"])

    # The key names what produced the features: other images or other weights are another key.
    x = splits.test.gather(torch.arange(len(splits.test)))
    key = feature_key(backbone, x, "cpu", 256)
    assert key == feature_key(backbone, x.clone(), "cpu", 256)
    assert key != feature_key(backbone, x[:-1], "cpu", 256)
    other = get_backbone("small_resnet", weights=None)
    assert key != feature_key(other, x, "cpu", 256)


GROUP_TOLERANCE = dict(rtol=1e-4, atol=1e-5)   # float round-off of one concatenated backbone batch


def _group_members(backbone, splits_of):
    """(method, splits, settings) of four different prompt runs, uneven training sizes."""
    from reprolib.transfer.registry import build_method
    from reprolib.transfer.train import FitSettings

    arms = [("vp", "ilm", 5, 40), ("vp", "flm", 6, 64), ("smm", "ilm", 7, 24), ("full", "ilm", 8, 50)]
    members = []
    for kind, label_map, seed, n_train in arms:
        method = build_method(kind, _digits_context(backbone, label_map, epochs=3, seed=seed))
        settings = FitSettings(epochs=3, batch_size=16, test_batch_size=32, seed=seed, eval_epochs=(2, 3))
        members.append((method, splits_of(n_train), settings))
    return members


@pytest.mark.parametrize("pass_limit", [None, 40], ids=["one pass", "passes of at most 40 images"])
def test_grouped_training_equals_one_by_one_within_tolerance(monkeypatch, pass_limit):
    """Also when a step's runs go through the backbone in parts (a GPU's memory bound, grouped.pass_images)."""
    from reprolib.models import get_backbone
    from reprolib.transfer import grouped as grouped_module
    from reprolib.transfer.train import Splits, fit

    fit_group = grouped_module.fit_group
    monkeypatch.setattr(grouped_module, "pass_images", lambda backbone, device: pass_limit)

    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None).eval().requires_grad_(False)
    base = _tiny_splits()

    def splits_of(n):
        return Splits(train=base.train.subset(torch.arange(n)), test=base.test)

    alone = [(fit(m, s, st), m.learned_state()) for m, s, st in _group_members(backbone, splits_of)]
    calls = []
    real_forward = backbone.forward
    monkeypatch.setattr(backbone, "forward", lambda x: calls.append(len(x)) or real_forward(x))
    members = _group_members(backbone, splits_of)
    real_parts, parts = grouped_module._parts, []
    monkeypatch.setattr(grouped_module, "_parts", lambda batch, limit: parts.append(real_parts(batch, limit)) or parts[-1])
    grouped = fit_group(backbone, members)
    assert max(calls) == 16 * 4                                   # the four runs' steps (and the 64-image mapping pass)
    assert max(len(step) for step in parts) == (1 if pass_limit is None else 2)   # one pass per step, or parts of 2 runs
    for (one, one_state), (method, _, _), together in zip(alone, members, grouped):
        state = method.learned_state()
        assert set(state) == set(one_state)
        for key in state:
            torch.testing.assert_close(state[key].float(), one_state[key].float(), **GROUP_TOLERANCE)
        torch.testing.assert_close(together.test_logits, one.test_logits, **GROUP_TOLERANCE)
        assert together.curves["eval_epoch"] == one.curves["eval_epoch"] == [2, 3]
        assert together.curves["train_loss"] == pytest.approx(one.curves["train_loss"], rel=1e-4)
    assert not torch.allclose(alone[0][1]["prompt.theta"], torch.zeros_like(alone[0][1]["prompt.theta"]))


def test_a_grouped_pass_is_bounded_by_the_gpu_s_memory(monkeypatch):
    """16 runs at RLT's batch 128 bring 2,048 images to a step: 83.5 GiB of bf16 activations for
    ResNet-50 (41.7 MiB each), more than an 80 GB H100 has; half of its 79.2 GiB takes 971 images,
    so the step goes through the backbone in parts of 7, 7 and 2 runs."""
    from types import SimpleNamespace

    from reprolib import devices
    from reprolib.models.flops import activation_bytes
    from reprolib.transfer import grouped

    assert round(activation_bytes("resnet50") / 2 ** 20, 1) == 41.7
    monkeypatch.setattr(devices, "device_memory", lambda device: int(79.2 * 2 ** 30))
    monkeypatch.setattr(grouped, "device_memory", devices.device_memory)
    limit = grouped.pass_images(SimpleNamespace(name="resnet50"), "cuda")
    assert limit == 971 and grouped.pass_images(SimpleNamespace(name="resnet50"), "cpu") is None
    step = [(None, torch.zeros(128), None)] * 16
    assert [len(part) for part in grouped._parts(step, limit)] == [7, 7, 2]
    assert grouped._parts(step[:3], None) == [[0, 1, 2]] and grouped._parts(step[:2], 1) == [[0], [1]]


def test_sweep_groups_prompt_runs_by_backbone_and_target_and_leaves_lp_alone():
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid
    from reprolib.transfer.grouped import group_configs

    configs = build_grid(load_profile("embedded", replicates=1, subgrids=[]))   # replicate 1's grid
    groups = group_configs(configs, max_runs=16)
    assert sorted(id(c) for g in groups for c in g) == sorted(id(c) for c in configs)   # each once
    for group in groups:
        first = group[0]
        assert len(group) <= 16
        assert all((c.target, c.network, c.kind, c.level) == (first.target, first.network, first.kind, first.level)
                   for c in group)
        assert first.method != "lp" or len(group) == 1
    # embedded: 2 targets x 7 networks; per pair 4 prompt arms x (3 shots x 3 seeds + 3 full) = 48
    # prompt runs = 3 groups of 16; each of the 2 x 7 x 12 LP runs alone.
    assert sum(1 for g in groups if g[0].method != "lp") == 2 * 7 * 3
    assert sum(1 for g in groups if g[0].method == "lp") == 2 * 7 * 12


def test_grouped_sweep_through_submitit_writes_the_same_records(smoke_upstream, tmp_path, capsys):
    pytest.importorskip("submitit")
    from reprolib.sweep.runner import SubmititOptions, run_sweep
    from reprolib.transfer import TransferConfig, run_transfer

    def configs(folder):
        base = dict(profile="smoke", target="digits", protocol="smoke", device="cpu", epochs=2,
                    results_path=str(tmp_path / folder), progress=False)
        return [TransferConfig(**base, method="vp", label_map="ilm", n_shot=2, seed=1),
                TransferConfig(**base, method="vp", label_map="flm", n_shot=3, seed=2),
                TransferConfig(**base, method="smm", label_map="ilm", n_shot=2, seed=1),
                TransferConfig(**base, method="lp", n_shot=2, seed=1)]

    alone = [run_transfer(cfg) for cfg in configs("alone")]
    summary = run_sweep(configs("grouped"), executor="submitit", group_runs=4,
                        submitit=SubmititOptions(cluster="debug", folder=tmp_path / "logs"))
    assert "submitted 4 runs (2 groups or single runs) as 1 jobs" in capsys.readouterr().out   # 3 prompt runs, LP
    assert summary.ok and [r["id"] for r in summary.records] == [r["id"] for r in alone]
    for one, together in zip(alone, summary.records):
        assert together["label_map"] == one["label_map"]
        for key in ("accuracy", "ece", "nll", "brier"):
            assert together["metrics"][key] == pytest.approx(one["metrics"][key], rel=1e-4, abs=1e-5)
    assert sorted(p.name for p in (tmp_path / "grouped").glob("*.json")) == \
        sorted(p.name for p in (tmp_path / "alone").glob("*.json"))


def test_cost_after_plan_counts_scheduled_tests_shared_lp_features_and_grouped_steps():
    from types import SimpleNamespace

    from reprolib.sweep import cost
    profile = SimpleNamespace(targets=["cifar10", "flowers102"], protocol="rlt")   # 600 OOD images per run

    def cfg(method, label_map, n_shot, seed):
        return SimpleNamespace(target="cifar10", method=method, label_map=label_map, n_shot=n_shot, seed=seed,
                               epochs=None, network="dense", kind="imp", level=0)

    configs = [cfg("vp", "flm", -1, 1), cfg("lp", None, 10, 1), cfg("lp", None, 10, 2), cfg("lp", None, -1, 1)]
    before = cost.grid_cost(configs, profile, 20, cost.BEFORE)
    after = cost.grid_cost(configs, profile, 20, cost.AFTER)
    vp_before = 20 * 10_000 + 50_000 + 600            # test every epoch, FLM once, OOD
    vp_after = 10 * 10_000 + 50_000 + 600             # test at epochs 2, 4, ..., 20
    lp_before = 2 * (100 + 10_000 + 600) + (50_000 + 10_000 + 600)
    lp_after = (10_000 + 600) + 100 + 100 + 50_000    # test + OOD once; each subset; the full split
    assert (before.fwd, after.fwd) == (vp_before + lp_before, vp_after + lp_after)
    assert before.fwdbwd == after.fwdbwd == 20 * 50_000
    # A 1-shot CIFAR-10 run (10 images, one step) is priced as a 128-image step alone, 8 in a group of 16.
    assert cost.padded_fwdbwd(10, 128, 1, 1) == 128 and cost.padded_fwdbwd(10, 128, 1, 16) == 10
    assert cost.padded_fwdbwd(16, 128, 3, 16) == 3 * 16 and cost.padded_fwdbwd(5, 128, 1, 16) == 8
    assert cost.padded_fwdbwd(50_000, 128, 1, 1) == 390 * 128 + 128   # the last step (80 images) padded


def test_the_paper_grid_cost_before_and_after(capsys):
    """The schedule and LP sharing cut the forward passes by 55%; the grid's GPU-hours by 23%
    (training forward+backward of the full-data runs is most of what is left)."""
    from reprolib.cli import main

    assert main(["sweep", "--profile", "paper", "--dry-run", "--throughput-fwd", "3000",
                 "--throughput-fwdbwd", "1000"]) == 0
    out = capsys.readouterr().out
    assert "before: test every epoch, LP features per run, one run at a time: 1,697.4 GPU-hours" in out
    assert "with the small-step floor (ASSUMED 128-image steps) 1,704.1" in out
    assert "after: test on the protocol's schedule (eval_fraction), shared LP features, groups of 16: 1,304.2 GPU-hours" in out
    assert "after / before: 0.77 of the GPU-hours with the floor (0.77 without)" in out


def test_a_group_that_raises_fails_each_of_its_runs_and_bad_group_size_is_an_error(tmp_path, monkeypatch):
    import reprolib.sweep.runner as sweep
    from reprolib.transfer import TransferConfig

    base = dict(profile="smoke", target="digits", protocol="smoke", device="cpu", results_path=str(tmp_path),
                progress=False, method="vp", label_map="ilm")
    configs = [TransferConfig(**base, n_shot=2, seed=s) for s in (1, 2)] + \
        [TransferConfig(**{**base, "target": "glyphs"}, n_shot=2, seed=1)]

    def boom(group):
        raise RuntimeError(f"group of {len(group)} failed")

    monkeypatch.setattr(sweep, "run_group", boom)
    summary = sweep.run_sweep(configs, group_runs=4, verbose=False)
    assert [f.error for f in summary.failures] == ["RuntimeError: group of 2 failed"] * 2 + \
        ["RuntimeError: group of 1 failed"]
    assert [f.config for f in summary.failures] == configs                 # the grid's order
    assert len(list(tmp_path.glob("*.failed.json"))) == 3
    with pytest.raises(ReprolibError, match="group_runs must be >= 1"):
        sweep.run_sweep(configs, group_runs=0)


def test_feature_memory_keeps_the_most_recent_within_its_limits(monkeypatch):
    import reprolib.transfer.feature_cache as feature_cache

    store = feature_cache.FeatureStore(None, memory_items=2)
    for key in "abc":
        store.features(key, lambda: torch.zeros(4, 8), "cpu")
    assert list(store._memory) == ["b", "c"] and store.computed == 3
    store.features("b", lambda: pytest.fail("b was remembered"), "cpu")
    monkeypatch.setattr(feature_cache, "MEMORY_BYTES", 100)           # 4 x 8 floats = 128 bytes each
    store.features("d", lambda: torch.zeros(4, 8), "cpu")
    assert list(store._memory) == ["d"]                                # over the byte limit: only the newest


def test_a_bad_run_in_a_group_fails_alone_and_its_group_mates_finish(smoke_upstream, tmp_path, monkeypatch):
    import reprolib.transfer.grouped as grouped
    from reprolib.sweep.runner import run_sweep
    from reprolib.transfer import TransferConfig

    base = dict(profile="smoke", target="digits", protocol="smoke", device="cpu", epochs=1,
                results_path=str(tmp_path), progress=False, method="vp", label_map="flm", n_shot=2)
    configs = [TransferConfig(**base, seed=s) for s in (1, 2, 3)]
    real_prepare, real_run = grouped.prepare_run, grouped.run_transfer

    def prepare(cfg, loaded=None):   # seed 2 cannot even be prepared
        if cfg.seed == 2:
            raise ValueError("seed 2 is broken")
        return real_prepare(cfg, loaded)

    monkeypatch.setattr(grouped, "prepare_run", prepare)
    monkeypatch.setattr(grouped, "run_transfer",
                        lambda cfg: prepare(cfg) and real_run(cfg))
    summary = run_sweep(configs, group_runs=3, verbose=False)
    assert [f.config.seed for f in summary.failures] == [2]
    assert summary.failures[0].error == "ValueError: seed 2 is broken"
    assert [r["config"]["seed"] for r in summary.records] == [1, 3]
    assert len(list(tmp_path.glob("*.failed.json"))) == 1 and len(list(tmp_path.glob("*.json"))) == 3
