"""Out-of-distribution tools: detection scores, seeded covariate corruptions, noise OOD inputs.

Detection scores follow the convention higher = more in-distribution, so they plug straight
into `reprolib.scores.metrics.ood_auroc` / `fpr_at_95_tpr` (ID is the positive class). Scores are
returned in float64: in float32 the max-softmax of a confident model saturates at exactly 1.0
and ties would blur AUROC.

Corruptions act on image batches in [0, 1] of shape (N, C, H, W), before the prompt/normalisation,
and always return values clamped to [0, 1]. Random draws use a CPU torch.Generator seeded by
`seed`, so the same seed gives the same images on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.scores.metrics import fpr_at_95_tpr, ood_auroc

CORRUPTIONS = ("rotation", "blur", "noise", "contrast")
SEVERITIES = (1, 2, 3, 4, 5)
NOISE_KINDS = ("uniform", "gaussian", "blobs")

# Per-severity parameters (index = severity - 1). Noise, blur and contrast follow the
# CIFAR-10-C choices of Hendrycks & Dietterich (2019); rotation angles are ours.
ROTATION_DEGREES = (6.0, 12.0, 18.0, 24.0, 30.0)   # |angle|; the sign is drawn per image from the seed
BLUR_SIGMA_AT_32PX = (0.4, 0.6, 0.7, 0.8, 1.0)     # Gaussian sigma in pixels, scaled by H / 32
NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)         # additive Gaussian pixel noise
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)      # x -> (x - mean) * c + mean, mean per image


# ----------------------------------------------------------------------------- detection scores

def _check_logits(logits: torch.Tensor, fn: str) -> torch.Tensor:
    check_type(f"{fn} logits", logits, torch.Tensor)
    if logits.dim() != 2 or logits.shape[1] == 0 or not logits.dtype.is_floating_point:
        raise ReprolibError(f"{fn} expects float logits of shape (N, K), got {tuple(logits.shape)} {logits.dtype}")
    return logits.detach().double()


def msp(logits: torch.Tensor) -> torch.Tensor:
    """Maximum softmax probability per sample (Hendrycks & Gimpel 2017), shape (N,), float64."""
    return _check_logits(logits, "msp").softmax(dim=1).max(dim=1).values


def energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Negative free energy T * logsumexp(logits / T) (Liu et al. 2020); higher = more ID. (N,), float64."""
    check_type("energy T", T, (int, float))
    if not T > 0:
        raise ReprolibError(f"energy temperature T must be > 0, got {T}")
    return T * torch.logsumexp(_check_logits(logits, "energy") / T, dim=1)


def max_cosine(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """Largest cosine similarity of each image feature (N, D) to the class text features (K, D)."""
    for name, t in (("image_features", image_features), ("text_features", text_features)):
        check_type(f"max_cosine {name}", t, torch.Tensor)
        if t.dim() != 2 or not t.dtype.is_floating_point:
            raise ReprolibError(f"max_cosine expects float {name} of shape (rows, D), got {tuple(t.shape)}")
    if image_features.shape[1] != text_features.shape[1]:
        raise ReprolibError(f"max_cosine feature sizes differ: image D={image_features.shape[1]}, "
                            f"text D={text_features.shape[1]}")
    image = F.normalize(image_features.detach().double(), dim=1)
    text = F.normalize(text_features.detach().double().to(image.device), dim=1)
    return (image @ text.T).max(dim=1).values


def detection_metrics(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> dict[str, float]:
    """{"auroc", "fpr95"} with ID positive and higher score = more ID (see reprolib.scores.metrics).

    The one place both studies turn detection scores into metrics: the Reprogrammer study
    stores this pair per OOD set, the transfer runs through `detection` below.
    """
    return {"auroc": ood_auroc(id_scores, ood_scores), "fpr95": fpr_at_95_tpr(id_scores, ood_scores)}


LOGIT_SCORES = {"msp": msp, "energy": energy}


def detection(id_logits: torch.Tensor, ood_logits: torch.Tensor,
              scores: tuple[str, ...] = ("msp", "energy")) -> dict[str, float]:
    """{"<score>_auroc", "<score>_fpr95"} for each named logit score (ID positive), flat as
    the transfer records store them: msp_auroc, msp_fpr95, energy_auroc, energy_fpr95."""
    out = {}
    for name in scores:
        check_choice("OOD score", name, LOGIT_SCORES)
        score = LOGIT_SCORES[name]
        for metric, value in detection_metrics(score(id_logits), score(ood_logits)).items():
            out[f"{name}_{metric}"] = value
    return out


# ----------------------------------------------------------------------------- corruptions

def _check_images(images: torch.Tensor, fn: str) -> torch.Tensor:
    check_type(f"{fn} images", images, torch.Tensor)
    if images.dim() != 4 or not images.dtype.is_floating_point:
        raise ReprolibError(f"{fn} expects float images of shape (N, C, H, W), got {tuple(images.shape)} {images.dtype}")
    if images.numel() and (float(images.min()) < -1e-6 or float(images.max()) > 1 + 1e-6):
        raise ReprolibError(f"{fn} expects images in [0, 1], got range [{float(images.min()):.3g}, "
                            f"{float(images.max()):.3g}] — corrupt before normalising")
    return images


def _rotate(images: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image about its centre by +-degrees (sign drawn per image); corners fill with 0."""
    sign = torch.randint(0, 2, (images.shape[0],), generator=generator).double() * 2 - 1
    angle = sign * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, kernel radius ceil(3 sigma), reflect padding (capped by image size)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(device=images.device, dtype=images.dtype)
    channels = images.shape[1]
    out = images
    for axis_kernel, pad in ((kernel.view(1, 1, 1, -1), (radius, radius, 0, 0)),
                             (kernel.view(1, 1, -1, 1), (0, 0, radius, radius))):
        mode = "reflect" if min(images.shape[-2:]) > radius else "replicate"
        out = F.conv2d(F.pad(out, pad, mode=mode), axis_kernel.expand(channels, 1, -1, -1).contiguous(),
                       groups=channels)
    return out


def corrupt(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """A covariate-shifted copy of `images` (N, C, H, W) in [0, 1]; output clamped to [0, 1].

    kinds and per-severity parameters (severity 1..5):
      rotation: rotate by ROTATION_DEGREES = 6, 12, 18, 24, 30 degrees, sign random per image
                (bilinear, black corners);
      blur:     Gaussian blur, sigma = BLUR_SIGMA_AT_32PX = 0.4, 0.6, 0.7, 0.8, 1.0 px times H / 32;
      noise:    add N(0, std^2) per pixel, std = NOISE_STD = 0.04, 0.06, 0.08, 0.09, 0.10;
      contrast: (x - m) * c + m with m the per-image mean, c = CONTRAST_FACTOR = 0.75 .. 0.15.
    blur and contrast draw nothing random; rotation and noise are deterministic given `seed`.
    """
    check_choice("corruption", kind, CORRUPTIONS)
    check_type("corruption severity", severity, int)
    check_choice("corruption severity", severity, SEVERITIES)
    check_type("corrupt seed", seed, int)
    images = _check_images(images, "corrupt")
    generator = torch.Generator().manual_seed(seed)
    level = severity - 1
    if kind == "rotation":
        out = _rotate(images, ROTATION_DEGREES[level], generator)
    elif kind == "blur":
        out = _gaussian_blur(images, BLUR_SIGMA_AT_32PX[level] * images.shape[-2] / 32)
    elif kind == "noise":
        noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
        out = images + NOISE_STD[level] * noise.to(device=images.device, dtype=images.dtype)
    else:  # contrast
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        out = (images - mean) * CONTRAST_FACTOR[level] + mean
    return out.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- noise OOD inputs

def noise_images(n: int, channels: int, size: int, seed: int = 0, kind: str = "uniform") -> torch.Tensor:
    """`n` synthetic OOD images (n, channels, size, size) in [0, 1], deterministic given `seed`.

    kinds: "uniform" (i.i.d. U[0, 1] pixels), "gaussian" (i.i.d. N(0.5, 0.25^2), clamped),
    "blobs" (binary blob shapes: Bernoulli(0.7) pixels, Gaussian-blurred with sigma 1.5 px * size / 32,
    thresholded at 0.75; the same channel pattern repeated, as in Hendrycks et al.'s Blobs set).
    """
    for name, value in (("n", n), ("channels", channels), ("size", size), ("seed", seed)):
        check_type(f"noise_images {name}", value, int)
    if n < 1 or channels < 1 or size < 1:
        raise ReprolibError(f"noise_images needs n, channels, size >= 1, got {n}, {channels}, {size}")
    check_choice("noise kind", kind, NOISE_KINDS)
    generator = torch.Generator().manual_seed(seed)
    if kind == "uniform":
        return torch.rand((n, channels, size, size), generator=generator)
    if kind == "gaussian":
        return (0.5 + 0.25 * torch.randn((n, channels, size, size), generator=generator)).clamp(0.0, 1.0)
    seeds = torch.bernoulli(torch.full((n, 1, size, size), 0.7), generator=generator)
    blurred = _gaussian_blur(seeds, 1.5 * size / 32)
    return (blurred > 0.75).float().expand(n, channels, size, size).contiguous()
