"""OOD detection scores, seeded covariate corruptions and noise OOD images."""

from __future__ import annotations

import pytest
import torch

from reprolib.scores import ood
from reprolib.errors import ReprolibError


def _images(n: int = 6, channels: int = 3, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Smooth structured test images in [0, 1] (a blurred bright square on a gradient)."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0.1, 0.6, size)
    images = (ramp[None, None, :, None] * 0.5 + ramp[None, None, None, :] * 0.5).repeat(n, channels, 1, 1)
    images[:, :, size // 4: size // 2, size // 3: 2 * size // 3] = 0.9
    return (images + 0.05 * torch.rand(images.shape, generator=g)).clamp(0, 1)


def test_scores_shapes_ranges_and_values():
    g = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(50, 10, generator=g)
    s = ood.msp(logits)
    assert s.shape == (50,) and s.dtype == torch.float64 and torch.isfinite(s).all()
    assert (s >= 0.1 - 1e-12).all() and (s <= 1).all()
    assert torch.allclose(s, logits.double().softmax(1).max(1).values)
    e = ood.energy(logits)
    assert e.shape == (50,) and torch.isfinite(e).all()
    assert torch.allclose(e, torch.logsumexp(logits.double(), 1))
    e2 = ood.energy(logits, T=2.0)
    assert torch.allclose(e2, 2.0 * torch.logsumexp(logits.double() / 2.0, 1))
    # -energy is bounded below by the max logit and above by max + T log K
    assert (e >= logits.max(1).values.double() - 1e-9).all()
    assert (e <= logits.max(1).values.double() + torch.log(torch.tensor(10.0)).double() + 1e-9).all()
    # huge logits: no overflow, no NaN
    assert torch.isfinite(ood.energy(1e4 * logits)).all() and torch.isfinite(ood.msp(1e4 * logits)).all()
    with pytest.raises(ReprolibError, match="T must be > 0"):
        ood.energy(logits, T=0.0)
    with pytest.raises(ReprolibError, match="shape"):
        ood.msp(torch.ones(5))


def test_max_cosine():
    g = torch.Generator().manual_seed(2)
    text = torch.randn(4, 16, generator=g)
    images = torch.cat([3.0 * text[:2], torch.randn(5, 16, generator=g)])
    c = ood.max_cosine(images, text)
    assert c.shape == (7,) and torch.isfinite(c).all()
    assert torch.allclose(c[:2], torch.ones(2, dtype=torch.float64))     # scale-invariant, exact match
    manual = torch.nn.functional.cosine_similarity(images[2:, None].double(), text[None].double(), dim=2).max(1).values
    assert torch.allclose(c[2:], manual)
    with pytest.raises(ReprolibError, match="feature sizes differ"):
        ood.max_cosine(images, torch.randn(4, 8))


def test_detection_metrics_separate_id_from_ood():
    g = torch.Generator().manual_seed(3)
    id_logits = torch.randn(200, 10, generator=g)
    id_logits[:, 0] += 6.0                                  # confident in-distribution
    ood_logits = torch.randn(200, 10, generator=g)          # flat: unconfident
    for score in (ood.msp, ood.energy):
        result = ood.detection_metrics(score(id_logits), score(ood_logits))
        assert set(result) == {"auroc", "fpr95"}
        assert result["auroc"] > 0.95 and result["fpr95"] < 0.2
    swapped = ood.detection_metrics(ood.msp(ood_logits), ood.msp(id_logits))
    assert swapped["auroc"] < 0.05 and swapped["fpr95"] > 0.9


def test_detection_flattens_the_pair_per_score_as_transfer_records_store_it():
    id_logits = torch.zeros(50, 10)
    id_logits[:, 3] = 8.0                       # confident: high msp and energy
    ood_logits = torch.randn(40, 10, generator=torch.Generator().manual_seed(0)) * 0.1
    out = ood.detection(id_logits, ood_logits)
    assert list(out) == ["msp_auroc", "msp_fpr95", "energy_auroc", "energy_fpr95"]
    assert out["msp_auroc"] == 1.0 and out["energy_auroc"] == 1.0 and out["msp_fpr95"] == 0.0
    swapped = ood.detection(ood_logits, id_logits, scores=("msp",))
    assert swapped == {"msp_auroc": 0.0, "msp_fpr95": 1.0}
    # the same pair as detection_metrics on the scores
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(30, 4, generator=g), torch.randn(20, 4, generator=g)
    pair = ood.detection_metrics(ood.energy(a), ood.energy(b))
    assert ood.detection(a, b, scores=("energy",)) == {"energy_auroc": pair["auroc"], "energy_fpr95": pair["fpr95"]}
    with pytest.raises(ReprolibError, match="unknown OOD score 'maxlogit'; valid choices: msp, energy"):
        ood.detection(a, b, scores=("maxlogit",))


@pytest.mark.parametrize("kind", ood.CORRUPTIONS)
def test_corruptions_deterministic_in_range_and_change_the_image(kind):
    images = _images()
    for severity in ood.SEVERITIES:
        a = ood.corrupt(images, kind, severity, seed=5)
        b = ood.corrupt(images, kind, severity, seed=5)
        assert a.shape == images.shape and a.dtype == images.dtype
        assert torch.equal(a, b)
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert (a - images).abs().mean() > 1e-3
    # stronger severity moves the image further (mean absolute change grows)
    changes = [float((ood.corrupt(images, kind, s, seed=5) - images).abs().mean()) for s in (1, 5)]
    assert changes[1] > changes[0]


def test_noise_differs_across_seeds_and_has_the_documented_std():
    gray = torch.full((4, 3, 32, 32), 0.5)
    a, b = ood.corrupt(gray, "noise", 5, seed=1), ood.corrupt(gray, "noise", 5, seed=2)
    assert not torch.equal(a, b)
    assert float((a - gray).std()) == pytest.approx(ood.NOISE_STD[4], rel=0.05)


def test_rotation_severity_and_seed():
    images = _images()
    r1, r5 = ood.corrupt(images, "rotation", 1, seed=0), ood.corrupt(images, "rotation", 5, seed=0)
    assert not torch.allclose(r1, r5)
    # a constant image keeps its centre value; corners turn black from severity 1 on a 28 px image
    flat = torch.full((2, 1, 28, 28), 0.7)
    rotated = ood.corrupt(flat, "rotation", 5, seed=0)
    assert torch.allclose(rotated[:, :, 14, 14], torch.tensor(0.7)) and float(rotated[:, :, 0, 0].max()) < 0.7
    # the sign of the angle is drawn per image from the seed: some seed flips image 0
    reference = ood.corrupt(images[:1], "rotation", 3, seed=0)
    assert any(not torch.allclose(ood.corrupt(images[:1], "rotation", 3, seed=s), reference) for s in range(1, 8))


def test_contrast_and_blur_behave():
    images = _images()
    low = ood.corrupt(images, "contrast", 5, seed=0)
    assert torch.allclose(low.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=1e-6)
    assert torch.allclose(low.std(dim=(1, 2, 3)), ood.CONTRAST_FACTOR[4] * images.std(dim=(1, 2, 3)), rtol=1e-4)
    blurred = ood.corrupt(images, "blur", 5, seed=0)
    def total_variation(x: torch.Tensor) -> float:
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())
    assert total_variation(blurred) < 0.8 * total_variation(images)
    assert torch.allclose(blurred.mean(), images.mean(), atol=0.01)   # blur keeps the brightness


def test_corrupt_rejects_bad_arguments():
    images = _images(n=1)
    with pytest.raises(ReprolibError, match="unknown corruption 'fog'.*rotation, blur, noise, contrast"):
        ood.corrupt(images, "fog", 1)
    for bad in (0, 6):
        with pytest.raises(ReprolibError, match=f"severity {bad}.*1, 2, 3, 4, 5"):
            ood.corrupt(images, "blur", bad)
    with pytest.raises(ReprolibError, match="severity"):
        ood.corrupt(images, "blur", True)
    with pytest.raises(ReprolibError, match=r"\[0, 1\]"):
        ood.corrupt(images * 4 - 2, "noise", 1)
    with pytest.raises(ReprolibError, match="N, C, H, W"):
        ood.corrupt(images[0], "noise", 1)


@pytest.mark.parametrize("kind", ood.NOISE_KINDS)
def test_noise_images(kind):
    a = ood.noise_images(5, 3, 32, seed=4, kind=kind)
    assert a.shape == (5, 3, 32, 32) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, ood.noise_images(5, 3, 32, seed=4, kind=kind))
    assert not torch.equal(a, ood.noise_images(5, 3, 32, seed=5, kind=kind))
    assert float(a.std()) > 0.1
    if kind == "blobs":
        assert set(a.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(a[:, 0], a[:, 2])
    if kind == "uniform":
        assert float(a.mean()) == pytest.approx(0.5, abs=0.02)


def test_noise_images_rejects_bad_arguments():
    with pytest.raises(ReprolibError, match="unknown noise kind 'pink'.*uniform, gaussian, blobs"):
        ood.noise_images(2, 3, 8, seed=0, kind="pink")
    with pytest.raises(ReprolibError, match=">= 1"):
        ood.noise_images(0, 3, 8, seed=0)
