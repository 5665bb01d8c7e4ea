"""Transfer runs end to end on `digits` with the smoke profile's real upstream model.

The upstream model (IMP level 0 of the smoke profile) is made once if it is missing
(`make_tickets`, a few hundred steps). Runs use the `smoke` protocol (2 epochs) so that
each takes seconds; thresholds are far above chance (0.1 for 10 classes) but below what
the code reaches, so a broken method (wrong map, frozen prompt, test leakage) fails.
"""

from __future__ import annotations

import json

import pytest
import torch

from reprolib.data.split import from_tensors
from reprolib.transfer.inputs import StoredInputs

from reprolib.errors import ReprolibError
from reprolib.transfer import TransferConfig, run_transfer
from reprolib.transfer import run as run_module
from reprolib.transfer.method import MethodContext
from reprolib.models.registry import names as backbone_names
from reprolib.protocols import names as protocol_names
from reprolib.transfer.labelmap import LABEL_MAPS, get_label_map
from reprolib.transfer.registry import arms as registered_arms
from reprolib.transfer.registry import get as get_method
from reprolib.transfer.registry import method_hparams
from reprolib.transfer.registry import names as method_names


ARMS = registered_arms()

# One torch thread per test (conftest.one_thread): on a shared 2-core machine that is faster.
pytestmark = pytest.mark.usefixtures("one_thread")


def config(tmp_path, **kw) -> TransferConfig:
    base = dict(profile="smoke", target="digits", protocol="smoke", device="cpu",
                results_path=str(tmp_path), progress=False)
    base.update(kw)
    return TransferConfig(**base)


# Every registered arm learns digits: accuracy after the smoke protocol's epochs (chance = 0.1).
# RLM maps onto arbitrary source classes, so it learns far less in 2 epochs; it gets more epochs
# and a lower bar. An arm without a row here (a new one) must beat DEFAULT_CASE.
CASES = {"lp": (2, 0.6), "vp/ilm": (2, 0.3), "vp/flm": (2, 0.25), "vp/rlm": (6, 0.12), "smm/ilm": (2, 0.4),
         "full/ilm": (2, 0.4)}
DEFAULT_CASE = (2, 0.2)


@pytest.mark.slow
@pytest.mark.parametrize("arm", [arm.name for arm in ARMS])
def test_each_arm_learns_digits(smoke_upstream, tmp_path, arm):
    method, _, label_map = arm.partition("/")
    epochs, floor = CASES.get(arm, DEFAULT_CASE)
    record = run_transfer(config(tmp_path, method=method, label_map=label_map or None, epochs=epochs))
    m = record["metrics"]
    assert m["accuracy"] > floor
    assert 0.0 <= m["ece"] <= 1.0 and m["nll"] > 0 and 0 <= m["brier"] <= 2
    assert sum(m["reliability"]["counts"]) == record["config"]["n_test"] == 360
    assert "legacy_rlt_ece" in m
    # OOD detection of the trained model (noise and the other offline sets), every score a rate.
    assert set(m["ood"]) == {"datasets", "noise"}
    assert all(0.0 <= v <= 1.0 for group in m["ood"].values() for v in group.values())
    assert set(m["ood"]["noise"]) == {"msp_auroc", "msp_fpr95", "energy_auroc", "energy_fpr95"}
    assert record["config"]["protocol"]["name"] == "smoke"
    assert record["config"]["ticket"]["density"] == 1.0
    assert len(record["curves"]["test_accuracy"]) == epochs
    assert record["curves"]["test_accuracy"][-1] == pytest.approx(m["accuracy"])   # final epoch reported
    if not label_map:
        assert record["label_map"] is None
    else:
        assert sorted(set(record["label_map"])) == sorted(record["label_map"]) and len(record["label_map"]) == 10
    if label_map and not get_label_map(label_map).reads_training_set:   # drawn without images: the seeded draw
        from reprolib.transfer.labelmap import random_label_map

        assert record["label_map"] == random_label_map(10, 10, record["config"]["seed"]).tolist()
    import numpy as np

    arrays = np.load(tmp_path / f"{record['id']}.npz")
    learned = [np.abs(arrays[k]).sum() for k in arrays.files if k != "label_map"]
    assert learned and all(np.isfinite(v) for v in learned) and max(learned) > 0   # something was learned
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_same_seed_same_record_and_rerun_skips(smoke_upstream, tmp_path, monkeypatch):
    cfg = config(tmp_path / "a", method="vp", label_map="ilm", n_shot=5, seed=3)
    first = run_transfer(cfg)
    second = run_transfer(cfg.replace(results_path=str(tmp_path / "b")))
    assert first["id"] == second["id"]
    assert first["metrics"] == second["metrics"]
    assert first["curves"] == second["curves"] and first["label_map"] == second["label_map"]
    other_seed = run_transfer(cfg.replace(seed=4, results_path=str(tmp_path / "b")))
    assert other_seed["id"] != first["id"]

    # A rerun reads the record back and trains nothing.
    monkeypatch.setattr(run_module, "build_method", lambda *a, **k: pytest.fail("existing record was retrained"))
    path = tmp_path / "a" / f"{first['id']}.json"
    mtime = path.stat().st_mtime_ns
    again = run_transfer(cfg)
    assert again == json.loads(path.read_text()) and path.stat().st_mtime_ns == mtime


def test_ilm_recomputes_map_every_epoch_flm_once(smoke_upstream, tmp_path, monkeypatch):
    import reprolib.transfer.labelmap as labelmap

    calls = []
    real = labelmap.greedy_label_map
    monkeypatch.setattr(labelmap, "greedy_label_map", lambda freq: calls.append(freq.sum()) or real(freq))
    run_transfer(config(tmp_path, method="vp", label_map="ilm", n_shot=3, epochs=4))
    assert len(calls) == 4 and all(int(n) == 30 for n in calls)   # whole few-shot train set, every epoch
    calls.clear()
    run_transfer(config(tmp_path, method="vp", label_map="flm", n_shot=3, epochs=4))
    assert len(calls) == 1


def test_best_on_validation_carved_from_train(smoke_upstream, tmp_path):
    record = run_transfer(config(tmp_path, method="lp", n_shot=10, epochs=3, select_best_on_val=True))
    assert record["config"]["n_val"] == 10 and record["config"]["n_train"] == 90
    assert len(record["curves"]["val_accuracy"]) == 3
    best = max(range(3), key=lambda e: (record["curves"]["val_accuracy"][e], -e))
    assert record["selection"] == {"rule": "best_val", "epoch": best + 1}
    assert record["metrics"]["accuracy"] == pytest.approx(record["curves"]["test_accuracy"][best])


def _context(backbone, seed=5, label_map=None, epochs=2):
    from reprolib.data import info
    from reprolib.protocols import get_protocol
    from reprolib.transfer.method import MethodContext

    return MethodContext(backbone=backbone, target=info("digits"), protocol=get_protocol("smoke"),
                         epochs=epochs, seed=seed, label_map=label_map)


def test_cached_and_uncached_linear_probe_train_the_same_head():
    from reprolib.models import get_backbone
    from reprolib.transfer.linear_probe import LinearProbe
    from reprolib.transfer.train import FitSettings, Splits, fit

    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    x, y = torch.rand(96, 1, 8, 8), torch.randint(0, 10, (96,))
    heads = []
    for cached in (True, False):
        ctx = _context(backbone)
        ctx = MethodContext(**{**ctx.__dict__, "hparams": method_hparams(get_method("lp"), ctx.protocol)})
        method = LinearProbe(ctx, cached=cached)
        result = fit(method, Splits(train=(x[:64], y[:64]), test=(x[64:], y[64:])),
                     FitSettings(epochs=2, batch_size=16, test_batch_size=32, seed=5))
        heads.append((method.learned_state()["head.weight"], result.test_logits))
    assert heads[0][0].shape == (10, backbone.feature_dim)
    assert not torch.equal(heads[0][0], torch.zeros_like(heads[0][0]))
    torch.testing.assert_close(heads[0][0], heads[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(heads[0][1], heads[1][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", method_names())
def test_registry_builds_every_method_with_its_facts(name):
    """Each entry's method, built on the 28 px grey backbone for digits, encodes, stores, maps and
    trains as its entry says (stored sides from `load_side`, augmentation from its numbers)."""
    from reprolib.data import info
    from reprolib.models import get_backbone
    from reprolib.transfer import registry
    from reprolib.transfer.labelmap import random_label_map

    spec, backbone, digits = registry.get(name), get_backbone("small_resnet", weights=None), info("digits")
    ctx = _context(backbone, label_map="rlm" if spec.needs_label_map else None)
    method = registry.build_method(name, ctx)
    x = torch.rand(7, 1, 8, 8)
    size = spec.prompt_size(backbone, digits)
    encoded = method.encode(x)
    assert encoded.shape == ((7, 1, size, size) if spec.input_prompt else (7, backbone.feature_dim))
    stored = method.prepare(from_tensors(x, torch.arange(7)))
    assert len(stored) == 7
    if spec.input_prompt:   # stored at the side the method loads the training split at (+ SMM's margin)
        assert stored.x(torch.arange(7)).shape[-1] == spec.load_side(backbone, digits, ctx.protocol, "train")
        augments = spec.load_side(backbone, digits, ctx.protocol, "train") != size
        assert (method.train_transform is None) == (not augments)
        assert method.label_map.tolist() == random_label_map(10, 10, 5).tolist()   # seed 5, fixed
    else:
        assert method.label_map is None and method.train_transform is None
    assert method.forward(method.encode(x)).shape == (7, 10)
    numbers = method_hparams(spec, ctx.protocol).values()   # every optimiser at one of the entry's rates
    assert method.optimizers and all(o.param_groups[0]["lr"] in numbers for o in method.optimizers)


def test_method_registry_values_and_errors():
    from reprolib.data import info
    from reprolib.models import get_backbone
    from reprolib.transfer import registry
    from reprolib.transfer.config import METHODS, PROMPT_METHODS

    assert METHODS == registry.names() and PROMPT_METHODS == registry.prompt_methods()
    backbone = get_backbone("small_resnet", weights=None)       # 28 px grey input
    # digits: prompt_size 20, so VP stores 20 px images; the others store the backbone's 28 px.
    sizes = {name: registry.get(name).prompt_size(backbone, info("digits")) for name in ("lp", "vp", "smm", "full")}
    assert sizes == {"lp": None, "vp": 20, "smm": 28, "full": 28}
    assert len(registry.build_method("smm", _context(backbone, label_map="rlm")).optimizers) == 2
    assert registry.build_method("vp", _context(backbone, label_map="rlm")).train_transform is None
    with pytest.raises(ReprolibError, match="needs a label map; valid choices: " + ", ".join(LABEL_MAPS)):
        registry.build_method("vp", _context(backbone))
    with pytest.raises(ReprolibError, match="takes no label map"):
        registry.build_method("lp", _context(backbone, label_map="ilm"))
    with pytest.raises(ReprolibError, match="unknown method 'prompt'; valid choices: " + ", ".join(method_names())):
        registry.get("prompt")


def test_smm_generator_schedule_follows_the_backbone_family():
    """ViT-family backbones train SMM's mask generator at generator_lr_vit without decay."""
    from reprolib.models import get_backbone
    from reprolib.transfer.registry import build_method

    backbone = get_backbone("small_resnet", weights=None)
    resnet = build_method("smm", _context(backbone, label_map="rlm"))
    assert [o.param_groups[0]["lr"] for o in resnet.optimizers] == [0.1, 0.01] and len(resnet.schedulers) == 2
    backbone.family = "vit"
    vit = build_method("smm", _context(backbone, label_map="rlm"))
    assert [o.param_groups[0]["lr"] for o in vit.optimizers] == [0.1, 0.001] and len(vit.schedulers) == 1


@pytest.mark.parametrize("kwargs,needle", [
    (dict(method="prompt"), "valid choices: " + ", ".join(method_names())),
    (dict(method="lp", label_map="ilm"), "valid choices: none"),
    (dict(label_map="hungarian"), "valid choices: " + ", ".join(LABEL_MAPS)),
    (dict(network="sparse"), "valid choices: dense, LT"),
    (dict(network="LT", kind="snip"), "valid choices: imp, magnitude, random"),
    (dict(n_shot=0), "n_shot"),
    (dict(protocol="fast"), "valid choices: " + ", ".join(protocol_names())),
    (dict(device="tpu"), "valid choices: auto, cpu, cuda"),
    (dict(epochs=0), "epochs"),
    (dict(seed="1"), "seed is str '1'; valid: an integer"),
    (dict(backbone="vgg16"), "unknown backbone 'vgg16'; valid choices: " + ", ".join(backbone_names())),
    (dict(backbone=50), "backbone is int 50; valid: a string"),
    (dict(seed=-1), "seed: seed -1 is out of range; valid: 0 .. 2**63-1"),
    (dict(val_fraction=float("nan")), "val_fraction is float nan; valid: a finite number"),
    (dict(network="LT", kind="imported"), "ticket kind 'imported' needs the ticket's name or folder"),
])
def test_bad_config_values_are_one_line_errors(kwargs, needle):
    with pytest.raises(ReprolibError) as err:
        TransferConfig(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_target_is_one_line_error(tmp_path):
    with pytest.raises(ReprolibError, match="unknown dataset 'mnist'; valid choices: .*digits"):
        run_transfer(config(tmp_path, target="mnist"))


def test_cli_runs_and_rejects_bad_flags(smoke_upstream, tmp_path, capsys):
    from reprolib.cli import main

    code = main(["transfer", "--profile", "smoke", "--protocol", "smoke", "--device", "cpu", "--method", "lp",
                 "--n_shot", "5", "--dataset", "digits", "--results_path", str(tmp_path), "--no_progress"])
    out = capsys.readouterr().out
    assert code == 0 and "accuracy" in out and "ECE" in out and str(tmp_path) in out
    assert main(["transfer", "--profile", "smoke", "--method", "lp", "--label_map", "ilm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "valid choices: none" in err
    for flag, value in [("--method", "bogus"), ("--dataset", "mnist"), ("--network", "sparse")]:
        assert main(["transfer", flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"invalid choice: '{value}'" in err


# ---- issue 10: what a run loads and evaluates with -------------------------------------------

def _synthetic_flowers(root, side=300):
    """A 3-class synthetic Flowers102 in torchvision's format (originals about `side` px, 3 train and
    2 test images per class); torchvision reads it back, so the real loading code runs."""
    from reprolib.dryrun import write_synthetic_dataset

    write_synthetic_dataset("flowers102", root, n_per_class_train=3, n_per_class_test=2, num_classes=3,
                            image_size=side)


def _originals(root, split, side):
    """The originals as torchvision serves them, each resized ONCE to `side` (PIL bilinear), [0, 1]."""
    import numpy as np
    import torchvision
    from PIL import Image

    from reprolib.dryrun import integrity_checks_bypassed

    with integrity_checks_bypassed():
        dataset = torchvision.datasets.Flowers102(str(root / "flowers102"), split=split)
        images = [dataset[i][0].convert("RGB") for i in range(len(dataset))]
    assert min(images[0].size) >= 300   # originals larger than any side asked for below
    arrays = [np.asarray(im.resize((side, side), Image.BILINEAR, reducing_gap=None)) for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def test_lp_and_smm_load_the_original_resized_once_vp_the_prompt_copy(tmp_path):
    """Issue 10 fix 1 (failed before: every paper split came at its 128 px prompt size and LP / SMM
    upsampled that copy). LP and SMM take the original resized once to the backbone input (SMM's
    augmented training copy to input + 32); VP keeps its 128 px copy; each side has its own cache."""
    from types import SimpleNamespace

    from reprolib.dryrun import integrity_checks_bypassed
    from reprolib.images import to_network
    from reprolib.models.registry import get_spec, names as backbone_names
    from reprolib.protocols import get_protocol
    from reprolib.transfer.registry import get as get_method

    _synthetic_flowers(tmp_path)
    backbone = next(n for n in backbone_names() if get_spec(n).input_size == 224 and get_spec(n).channels == 3)
    profile = SimpleNamespace(path=lambda key: tmp_path, download=False, backbone=backbone)
    expected_224 = _originals(tmp_path, "test", 224)
    with integrity_checks_bypassed():
        lp = run_module.load_target(TransferConfig(profile="smoke", target="flowers102", method="lp"), profile, 1,
                                    get_protocol("rlt"))
        smm = run_module.load_target(TransferConfig(profile="smoke", target="flowers102", method="smm",
                                                    label_map="ilm"), profile, 1, get_protocol("smm"))
        vp = run_module.load_target(TransferConfig(profile="smoke", target="flowers102", method="vp",
                                                   label_map="ilm"), profile, 1, get_protocol("rlt"))
    lp_test = lp.test.tensors()[0]
    assert lp_test.shape == (6, 3, 224, 224) and torch.equal(lp_test, expected_224)
    assert torch.equal(lp.train.tensors()[0], _originals(tmp_path, "train", 224))
    # The old path (the 128 px copy upsampled) is a different, blurred image.
    upsampled = to_network(vp.test.tensors()[0], 3, 224)
    assert vp.test.tensors()[0].shape[-1] == vp.train.tensors()[0].shape[-1] == 128
    assert (upsampled - expected_224).abs().max() > 0.05
    assert torch.equal(smm.test.tensors()[0], expected_224)
    assert torch.equal(smm.train.tensors()[0], _originals(tmp_path, "train", 256))
    assert get_method("lp").load_side(get_spec(backbone), lp.test.info, get_protocol("rlt"), "test") == 224
    cached = sorted(p.name.rsplit("_", 1)[0] for p in (tmp_path / "cache").glob("*.u8"))
    assert cached == ["flowers102_test_128", "flowers102_test_224", "flowers102_train_128",
                      "flowers102_train_224", "flowers102_train_256"]


def test_few_shot_above_a_class_size_is_capped_and_recorded(tmp_path, capsys):
    """Issue 10 fix 4 (raised before): n_shot 50 on a class of 10 keeps the 10, records it, warns once."""
    from types import SimpleNamespace

    from reprolib.dryrun import integrity_checks_bypassed, write_synthetic_dataset
    from reprolib.study.ledger import record_to_row
    from reprolib.models.registry import get_spec, names as backbone_names
    from reprolib.protocols import get_protocol

    write_synthetic_dataset("flowers102", tmp_path, n_per_class_train=10, n_per_class_test=1, num_classes=2)
    backbone = next(n for n in backbone_names() if get_spec(n).input_size == 224)
    profile = SimpleNamespace(path=lambda key: tmp_path, download=False, backbone=backbone)
    with integrity_checks_bypassed():
        data = run_module.load_target(TransferConfig(profile="smoke", target="flowers102", method="lp", n_shot=50),
                                      profile, 1, get_protocol("rlt"))
    assert len(data.train) == 20 and data.shots["min"] == data.shots["max"] == 10
    assert len(data.shots["capped"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: flowers102 n_shot=50: 2 classes have fewer images")
    row = record_to_row({"id": "x", "config": {"n_shot": 50, "effective_shots": data.shots, "legacy_ece_batch": 128},
                         "metrics": {}})
    assert (row["shots_min"], row["shots_max"], row["capped"], row["legacy_ece_batch"]) == (10, 10, 2, 128)


def test_evaluation_never_autocasts_even_on_cuda(monkeypatch):
    """Issue 10 fix 5 (failed before: predict and LP's feature pass entered bf16 autocast on CUDA)."""
    import contextlib

    from reprolib import batching, devices
    from reprolib.transfer import linear_probe, train

    entered = []

    def recording_autocast(device):
        entered.append(str(device))
        return contextlib.nullcontext()

    for module in (devices, batching, linear_probe, train):
        monkeypatch.setattr(module, "autocast", recording_autocast, raising=False)

    class Chunk:   # stands in for a CPU chunk "moved to cuda" on a machine without a GPU
        def __init__(self, x):
            self.x = x

        def to(self, device):
            return self.x

    class Inputs:
        device = torch.device("cpu")

        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, idx):
            return Chunk(self.x[idx])

    x = torch.randn(10, 4)
    stored = StoredInputs(torch.zeros(10, dtype=torch.long), lambda idx: Chunk(x[idx]).to("cuda"), "cpu")
    logits, accuracy = train.evaluate(lambda z: z * 2, stored, 3)
    assert torch.equal(logits, x * 2) and logits.dtype == torch.float32
    assert torch.equal(batching.predict(lambda z: z + 1, Inputs(x), 4, "cuda"), x + 1)

    class Backbone(torch.nn.Module):
        channels, input_size, feature_dim = 3, 8, 3

        def normalize(self, z):
            return z

        def features(self, z):
            return z.mean(dim=(2, 3))

    feats = linear_probe.extract_features(Backbone(), torch.rand(5, 3, 8, 8), device="cuda", batch_size=2)
    assert feats.shape == (5, 3) and feats.dtype == torch.float32
    assert entered == []
