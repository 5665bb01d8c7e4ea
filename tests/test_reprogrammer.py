"""Reprogrammer (docs/methods.md s.6): frame, gradients, residual mixing, loss, open_clip, study."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.records import versions
from reprolib.reprogrammer.encoders import TinyDualEncoder, build_open_clip, build_vocabulary, tiny_open_clip_config
from reprolib.reprogrammer.loss import contrastive_targets, focal_loss, symmetric_focal_contrastive
from reprolib.reprogrammer.evaluate import build_eval_sets
from reprolib.reprogrammer.pretrain import embedded_vocabulary
from reprolib.reprogrammer.recipe import make_recipe, recipe_for
from reprolib.reprogrammer.reprogram import ImageReprogram, Reprogrammer, frame_mask
from reprolib.reprogrammer.train import (class_text_features, train_finetune, train_linear_probe, train_reprogrammer,
                                         zero_shot_features)

CLASSES = ["cat", "dog", "ankle boot"]


def tiny_encoder(seed: int = 0) -> TinyDualEncoder:
    torch.manual_seed(seed)
    return TinyDualEncoder(build_vocabulary([f"a photo of a {c}" for c in CLASSES])).eval()


def test_frame_mask_leaves_centre_untouched():
    mask = frame_mask(28, 2)
    assert mask.sum() == 28 * 28 - 24 * 24
    assert mask[..., 2:26, 2:26].abs().sum() == 0 and mask[..., :2, :].min() == 1
    program = ImageReprogram(28, 1, frame=2, generator=torch.Generator().manual_seed(0))
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = program(x)
    assert torch.equal(out[..., 2:26, 2:26], x[..., 2:26, 2:26])
    assert (out[..., :2, :] - x[..., :2, :]).abs().max() > 0.05     # the frame is perturbed
    assert out.min() >= 0 and out.max() <= 1
    small = torch.rand(2, 1, 8, 8)                                   # digits size: resized first
    assert torch.equal(program(small)[..., 2:26, 2:26], to_network(small, 1, 28)[..., 2:26, 2:26])
    with pytest.raises(ReprolibError, match="frame width 14"):
        frame_mask(28, 14)


def _grad_check(model: Reprogrammer, images: torch.Tensor, labels: torch.Tensor) -> None:
    model.train()
    loss = symmetric_focal_contrastive(model.image_features(images), model.text_features(model.caption_ids[labels]),
                                       model.encoder.logit_scale.detach(), contrastive_targets(labels))
    loss.backward()
    trained = {id(model.image_program.W), id(model.encoder.token_embedding.weight),
               id(model.encoder.positional_embedding)}
    for name, p in model.named_parameters():
        if id(p) in trained:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_only_perturbation_and_text_embeddings_get_gradients():
    model = Reprogrammer(tiny_encoder(), CLASSES, frame=2, seed=1)
    _grad_check(model, torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]))


def test_residual_alpha_endpoints():
    encoder = tiny_encoder()
    model = Reprogrammer(encoder, CLASSES, frame=2, seed=1)
    with torch.no_grad():   # move the text tables away from the zero-shot ones
        model.encoder.token_embedding.weight.add_(0.5 * torch.randn_like(model.encoder.token_embedding.weight))
    x = torch.rand(5, 1, 28, 28)
    image0, text0 = model.features(x, alpha=0.0)
    with torch.no_grad():
        assert torch.allclose(image0, model.image_features(x)) and torch.allclose(text0, model.text_features())
        zs_image = F.normalize(encoder.encode_image(encoder.normalize(x)), dim=-1)
        zs_text = F.normalize(encoder.encode_text(encoder.tokenize([f"a photo of a {c}" for c in CLASSES])), dim=-1)
    image1, text1 = model.features(x, alpha=1.0)
    assert torch.allclose(image1, zs_image, atol=1e-6) and torch.allclose(text1, zs_text, atol=1e-6)
    assert not torch.allclose(text0, text1, atol=1e-3)
    image_half, _ = model.features(x, alpha=0.4)
    assert torch.allclose(image_half, 0.6 * image0 + 0.4 * image1, atol=1e-6)   # no re-normalisation
    assert image_half.norm(dim=1).max() <= 1 + 1e-6


def _hand_focal(rows: list[list[float]], targets: list[list[float]], alpha: float, gamma: float) -> float:
    total = 0.0
    for logits, t in zip(rows, targets):
        z = sum(math.exp(v) for v in logits)
        total += sum(-alpha * tj * (1 - math.exp(v) / z) ** gamma * math.log(math.exp(v) / z)
                     for v, tj in zip(logits, t))
    return total / len(rows)


def test_loss_matches_hand_computation():
    image = [[1.0, 0.0], [0.6, 0.8]]
    text = [[0.8, 0.6], [0.0, 1.0]]
    s = 2.0
    sim = [[s * sum(a * b for a, b in zip(i, t)) for t in text] for i in image]   # [[1.6, 0], [1.92, 1.6]]
    sim_t = [[sim[j][i] for j in range(2)] for i in range(2)]
    eye = [[1.0, 0.0], [0.0, 1.0]]
    expected = 0.5 * (_hand_focal(sim, eye, 0.8, 4.0) + _hand_focal(sim_t, eye, 0.8, 4.0))
    got = symmetric_focal_contrastive(torch.tensor(image), torch.tensor(text), s, torch.eye(2), 0.8, 4.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # 3 x 3 with two same-class captions: multi-positive targets
    logits = [[2.0, 1.0, -1.0], [0.5, 0.0, 0.3], [1.0, -2.0, 3.0]]
    labels = torch.tensor([0, 0, 1])
    t = contrastive_targets(labels, "same_class")
    assert t.tolist() == [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    assert float(focal_loss(torch.tensor(logits), t, 0.8, 4.0)) == pytest.approx(
        _hand_focal(logits, t.tolist(), 0.8, 4.0), rel=1e-6)
    # identical same-class captions: diagonal (public code) and multi-positive targets coincide
    image_f = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    class_text = F.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(1)), dim=1)
    batch_labels = torch.tensor([0, 1, 0, 2, 0, 1])
    diagonal = symmetric_focal_contrastive(image_f, class_text[batch_labels], 5.0, contrastive_targets(batch_labels))
    multi = symmetric_focal_contrastive(image_f, class_text[batch_labels], 5.0,
                                        contrastive_targets(batch_labels, "same_class"))
    assert float(diagonal) == pytest.approx(float(multi), rel=1e-6)
    # gamma 0, alpha 1 is cross-entropy
    assert float(focal_loss(torch.tensor(logits), torch.tensor([0, 2, 1]), 1.0, 0.0)) == pytest.approx(
        float(F.cross_entropy(torch.tensor(logits), torch.tensor([0, 2, 1]))), rel=1e-6)


def test_open_clip_small_model_forward_backward_offline():
    encoder = build_open_clip(model_config=tiny_open_clip_config())
    assert encoder.image_size == 32 and encoder.channels == 3
    model = Reprogrammer(encoder, ["cat", "dog", "bird"], frame=4, seed=1)
    _grad_check(model, torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 2]))   # gray -> 3 channels, resized
    with pytest.raises(ReprolibError, match="unknown open_clip model"):
        build_open_clip("ViT-Nope-1")


def test_recipe_validation():
    assert make_recipe({}).lr_text == 5e-4 and make_recipe({}).frame == 16
    with pytest.raises(ReprolibError, match="unknown reprogrammer recipe key 'epoch'"):
        make_recipe({"epoch": 3})
    with pytest.raises(ReprolibError, match="reprogrammer.epochs is str '3'; valid: an integer"):
        make_recipe({"epochs": "3"})
    with pytest.raises(ReprolibError, match="residual_alpha"):
        make_recipe({"residual_alpha": 1.5})
    with pytest.raises(ReprolibError, match="reprogrammer baselines 'v2'.*public, reprolib_v1"):
        make_recipe({"baselines": "v2"})
    with pytest.raises(ReprolibError, match="same length"):
        make_recipe({"step_milestones": [0.4, 0.7], "step_factors": [0.5, 0.2, 0.1]})
    with pytest.raises(ReprolibError, match="increasing fractions"):
        make_recipe({"step_milestones": [0.7, 0.4, 0.8]})


def test_public_baselines_are_the_default():
    # Fails before issue 10: no `baselines` field; 100 LP epochs, 10 fine-tuning epochs.
    recipe = make_recipe({})
    assert recipe.baselines == "public"
    assert (recipe.lp_epochs, recipe.lp_lr, recipe.finetune_epochs, recipe.finetune_lr) == (25, 0.01, 25, 3e-5)
    assert (recipe.step_milestones, recipe.step_factors, recipe.finetune_head_scale) == (
        [0.4, 0.7, 0.8], [0.5, 0.2, 0.1], 100.0)


def _recorded_lrs(monkeypatch, optimizer_cls) -> list[float]:
    """The lr of the first parameter group at every optimizer step (patched onto the class)."""
    seen, step = [], optimizer_cls.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(optimizer_cls, "step", recording_step)
    return seen


def test_linear_probe_lr_follows_the_step_schedule(monkeypatch):
    # 20 images, batch 2, 10 epochs: 100 steps; milestones at steps 40, 70 and 80.
    # Fails before issue 10 (a constant 0.01 for 100 epochs).
    seen = _recorded_lrs(monkeypatch, torch.optim.Adam)
    recipe = make_recipe({"batch_size": 2, "lp_epochs": 10})
    features = F.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    train_linear_probe(features, torch.arange(20) % 3, 3, recipe, seed=1)
    assert len(seen) == 100
    assert [seen[k] for k in (0, 39, 40, 69, 70, 79, 80, 99)] == pytest.approx(
        [0.01, 0.01, 0.005, 0.005, 0.002, 0.002, 0.001, 0.001], rel=1e-12)
    seen.clear()
    train_linear_probe(features, torch.arange(20) % 3, 3, make_recipe({"batch_size": 2, "lp_epochs": 10,
                                                                       "baselines": "reprolib_v1"}), seed=1)
    assert seen == [0.01] * 100                                  # reprolib_v1: no schedule


def test_public_finetune_head_starts_at_100_text_features_and_trains(monkeypatch):
    # Fails before issue 10: the head was the fixed text features (a buffer, no gradients, no bias).
    encoder = tiny_encoder()
    text = class_text_features(encoder, CLASSES, "a photo of a {}")
    recipe = make_recipe({"batch_size": 4, "finetune_epochs": 1, "finetune_lr": 1e-3})
    images, labels = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(12) % 3
    seen = _recorded_lrs(monkeypatch, torch.optim.AdamW)
    initial = {}
    monkeypatch.setattr(torch.nn.Linear, "forward", _remember_first_head_state(initial))
    tuned = train_finetune(encoder, images, labels, text, recipe, seed=1)
    assert torch.equal(initial["weight"], 100.0 * text) and torch.equal(initial["bias"], torch.zeros(3))
    assert torch.allclose(text.norm(dim=-1), torch.ones(3))                  # unit-normalised text features
    head = tuned.head
    assert isinstance(head, torch.nn.Linear) and head.weight.requires_grad and head.bias.requires_grad
    assert not torch.equal(head.weight, initial["weight"]) and head.bias.abs().sum() > 0   # both trained
    assert seen == pytest.approx([1e-3, 1e-3, 5e-4], rel=1e-12)   # 3 steps: step 2 >= 40% of 3; no warm-up
    x = images[:5]
    with torch.no_grad():
        assert torch.allclose(tuned(x), head(tuned.image_features(x)))


def _remember_first_head_state(store: dict):
    forward = torch.nn.Linear.forward

    def remembering(self, inputs):
        if self.out_features == 3 and "weight" not in store:      # the head's first forward: its initial state
            store["weight"], store["bias"] = self.weight.detach().clone(), self.bias.detach().clone()
        return forward(self, inputs)

    return remembering


def test_public_finetune_head_receives_gradients():
    encoder = tiny_encoder()
    text = class_text_features(encoder, CLASSES, "a photo of a {}")
    recipe = make_recipe({"batch_size": 4, "finetune_epochs": 1, "finetune_lr": 1e-3})
    images, labels = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(12) % 3
    tuned = train_finetune(encoder, images, labels, text, recipe, seed=1).train()
    F.cross_entropy(tuned(images), labels).backward()
    assert tuned.head.weight.grad.abs().sum() > 0 and tuned.head.bias.grad.abs().sum() > 0
    assert tuned.encoder.visual[0].weight.grad.abs().sum() > 0                 # the image tower trains too
    assert tuned.encoder.token_embedding.weight.grad is None                    # the text tower does not


def test_reprolib_v1_finetune_keeps_the_fixed_text_head():
    encoder = tiny_encoder()
    text = class_text_features(encoder, CLASSES, "a photo of a {}")
    recipe = make_recipe({"batch_size": 4, "finetune_epochs": 1, "finetune_lr": 1e-3, "baselines": "reprolib_v1"})
    images, labels = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(12) % 3
    tuned = train_finetune(encoder, images, labels, text, recipe, seed=1)
    assert list(tuned.head.parameters()) == [] and torch.equal(tuned.head.text, text)
    x = images[:5]
    with torch.no_grad():
        assert torch.equal(tuned(x), 100.0 * tuned.image_features(x) @ text.T)    # scored at logit_scale_eval


# The values each profile's YAML gives; the resolved recipe is part of every Reprogrammer record's
# hashed config. Issue 10 (fix 6) moved the baselines to the public RPR recipe: lp_epochs 25 everywhere
# (was smoke 10 / embedded 50 / paper 100), finetune_epochs smoke 2 / embedded 15 / paper 25 (was 1 / 4 / 10).
SMOKE_RECIPE = {"encoder": "embedded", "frame": 2, "epochs": 2, "batch_size": 64, "warmup_max_fraction": 0.05,
                "lp_epochs": 25, "finetune_epochs": 2, "finetune_lr": 1e-3, "severities": [3],
                "max_train": 512, "max_eval": 256, "n_noise": 128, "encoder_epochs": 3,
                "encoder_train_size": 3000, "baselines": "public"}
EMBEDDED_RECIPE = {"encoder": "embedded", "frame": 2, "epochs": 15, "batch_size": 128, "warmup_max_fraction": 0.05,
                   "lp_epochs": 25, "finetune_epochs": 15, "finetune_lr": 1e-3, "severities": [1, 3, 5],
                   "max_train": 6000, "max_eval": 2000, "n_noise": 500, "encoder_epochs": 3,
                   "encoder_train_size": 20000, "baselines": "public"}
PAPER_RECIPE = {"encoder": "open_clip", "frame": 16, "epochs": 25, "batch_size": 128, "warmup_max_fraction": 1.0,
                "lp_epochs": 25, "finetune_epochs": 25, "finetune_lr": 3e-5, "severities": [1, 3, 5],
                "max_train": -1, "max_eval": -1, "n_noise": 1000, "encoder_epochs": 4,
                "encoder_train_size": 20000, "baselines": "public"}


@pytest.mark.parametrize("name, expected", [("smoke", SMOKE_RECIPE), ("embedded", EMBEDDED_RECIPE),
                                            ("paper", PAPER_RECIPE)])
def test_profile_yaml_gives_the_recipe(name, expected):
    recipe = recipe_for(load_profile(name))
    for key, value in expected.items():
        got = getattr(recipe, key)
        assert got == value and type(got) is type(value), (key, got, value)
    # Unlisted numbers are the paper's (the dataclass defaults) in every profile.
    assert (recipe.lr_image, recipe.lr_text, recipe.warmup_steps, recipe.residual_alpha) == (0.005, 5e-4, 500, 0.4)
    assert (recipe.encoder_lr, recipe.encoder_batch_size, recipe.lp_lr) == (3e-3, 128, 0.01)
    assert (recipe.step_milestones, recipe.step_factors, recipe.finetune_head_scale) == (
        [0.4, 0.7, 0.8], [0.5, 0.2, 0.1], 100.0)


def test_recipe_comes_from_the_yaml_not_the_profile_name():
    # A profile called "smoke" with an empty reprogrammer dict gets the paper's recipe.
    assert recipe_for(load_profile("smoke", reprogrammer={})).epochs == 25
    assert recipe_for(load_profile("paper", reprogrammer={"epochs": 3})).epochs == 3


def test_vocabulary_covers_the_embedded_datasets():
    # The cached stand-in encoder is only reused when this list is unchanged (pretrain.py).
    assert embedded_vocabulary("a photo of a {}") == [
        "<pad>", "<sos>", "<eos>", *"0123456789", "a", "ankle", "b", "bag", "boot", "c", "coat", "d", "dress",
        "e", "f", "g", "h", "i", "j", "of", "photo", "pullover", "sandal", "shirt", "sneaker", "t-shirt/top",
        "trouser"]


def test_records_versions_adds_importable_extras():
    v = versions(extra=("open_clip", "no_such_package_for_reprolib"))
    import open_clip

    assert v["open_clip"] == open_clip.__version__ and "no_such_package_for_reprolib" not in v
    assert {"python", "torch", "torchvision", "numpy", "reprolib"} <= set(v)


def test_zero_shot_features_resize_like_the_transfer_study():
    encoder = tiny_encoder()
    digits = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    feats = zero_shot_features(encoder, digits, batch_size=2)
    expected = F.normalize(encoder.encode_image(encoder.normalize(to_network(digits, 1, 28))), dim=-1)
    assert feats.shape == (5, 64) and torch.allclose(feats, expected, atol=1e-6)
    rgb = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    luma = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1)   # BT.601, not the mean
    assert torch.allclose(encoder.image_features(rgb), encoder.image_features(luma), atol=1e-6)


def test_eval_sets_use_the_ood_partners_at_the_target_size():
    recipe = make_recipe({**SMOKE_RECIPE, "max_eval": 16, "n_noise": 8})
    sets = build_eval_sets("digits", recipe, seed=1)
    assert list(sets.ood) == ["fashion_mnist", "glyphs", "noise"]
    assert all(x.shape[1:] == (1, 8, 8) for x in sets.ood.values()) and len(sets.ood["glyphs"]) == 16


def test_training_is_deterministic_and_moves_only_trained_tables():
    recipe = make_recipe({**load_profile("smoke").reprogrammer, "epochs": 2, "batch_size": 4})
    images, labels = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.arange(12) % 3
    encoder = tiny_encoder()
    a, losses_a = train_reprogrammer(encoder, images, labels, CLASSES, recipe, seed=1)
    b, losses_b = train_reprogrammer(encoder, images, labels, CLASSES, recipe, seed=1)
    assert losses_a == losses_b and torch.equal(a.image_program.W, b.image_program.W)
    assert torch.equal(a.encoder.token_embedding.weight, b.encoder.token_embedding.weight)
    assert not torch.equal(a.encoder.token_embedding.weight, encoder.token_embedding.weight)
    assert torch.equal(a.encoder.visual[0].weight, encoder.visual[0].weight)   # image tower frozen


@pytest.mark.slow
def test_smoke_study_records_zero_shot_and_resume(tmp_path):
    from reprolib.config import load_profile
    from reprolib.reprogrammer import reprogrammer_table, run_reprogrammer_study

    profile = load_profile("smoke", artifacts=str(tmp_path))
    records = run_reprogrammer_study(profile, alphas=(0.0, 1.0))
    methods = [(r["config"]["method"], r["config"]["alpha"]) for r in records]
    assert methods == [("zero_shot", None), ("linear_probe", None), ("finetune", None), ("reprogrammer", None),
                       ("residual_reprogrammer", 0.0), ("residual_reprogrammer", 0.4), ("residual_reprogrammer", 1.0)]
    # the stand-in encoder learned Fashion-MNIST: zero-shot far above chance (10%)
    assert records[0]["encoder"]["zero_shot_accuracy_fashion_mnist_test"] > 0.4
    by = dict(zip(methods, records))
    assert by[("residual_reprogrammer", 1.0)]["metrics"] == by[("zero_shot", None)]["metrics"]
    assert by[("residual_reprogrammer", 0.0)]["metrics"] == by[("reprogrammer", None)]["metrics"]
    m = by[("linear_probe", None)]["metrics"]
    assert set(m["ood_detection"]) == {"fashion_mnist", "glyphs", "noise"}
    assert set(m["ood_generalisation"]) == {"rotation", "blur", "noise", "contrast"}
    assert all(0 <= d["auroc"] <= 1 and 0 <= d["fpr95"] <= 1 for d in m["ood_detection"].values())
    files = sorted((tmp_path / "reprogrammer" / "runs").glob("*.json"))
    stamps = [f.stat().st_mtime_ns for f in files]
    again = run_reprogrammer_study(profile, alphas=(0.0, 1.0))           # resumes: nothing rewritten
    assert again == records and [f.stat().st_mtime_ns for f in files] == stamps
    table = reprogrammer_table(records)
    assert len(table) == 7 and {"id_accuracy", "mean_auroc", "fpr95_noise"} <= set(table.columns)
