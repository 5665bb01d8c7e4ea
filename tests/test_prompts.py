"""Visual prompts: padding, watermark, SMM, the registry and the augmentation helper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reprolib.errors import ReprolibError
from reprolib.prompts import (
    PROMPTS,
    PaddingPrompt,
    SMMPrompt,
    WatermarkPrompt,
    augment,
    augment_pad,
    get_kind,
    get_prompt,
    match_channels,
    pad_offsets,
    upsample_patches,
)

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _frozen_backbone(channels: int = 3, num_source: int = 10) -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(channels, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_source),
    )
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# --- padding prompt -----------------------------------------------------------------


@pytest.mark.parametrize("s,out", [(32, 224), (33, 224), (20, 28), (21, 28), (128, 224)])
def test_padding_offsets_follow_formula_and_image_region_is_untouched(s: int, out: int) -> None:
    prompt = PaddingPrompt(s, out, channels=3)
    before = (out - s + 1) // 2
    assert pad_offsets(s, out) == (before, out - s - before)
    x = torch.rand(2, 3, s, s)
    y = prompt(x)
    assert y.shape == (2, 3, out, out)
    assert torch.equal(y[:, :, before : before + s, before : before + s], x)
    mask = prompt.frame_mask
    assert mask.sum() == out * out - s * s
    assert mask[before : before + s, before : before + s].sum() == 0
    frame = mask.bool().expand(2, 3, out, out)
    assert torch.equal(y[frame], torch.full_like(y[frame], 0.5))  # sigmoid(0), unnormalised


def test_padding_normalisation_comes_last_and_odd_offsets() -> None:
    prompt = PaddingPrompt(3, 8, channels=3, normalize=IMAGENET)
    assert (prompt.before, prompt.after) == (3, 2)
    x = torch.rand(1, 3, 3, 3)
    y = prompt(x)
    mean = torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    expected_frame = (0.5 - mean) / std
    assert torch.allclose(y[:, :, 0:1, 0:1], expected_frame)
    assert torch.allclose(y[:, :, 3:6, 3:6], (x - mean) / std)
    assert torch.allclose(prompt.unprompted(x)[:, :, 0:1, 0:1], (0 - mean) / std)  # zero frame


def test_padding_only_theta_is_a_parameter_and_prompt_image() -> None:
    prompt = PaddingPrompt(20, 28, channels=1)
    assert [name for name, _ in prompt.named_parameters()] == ["theta"]
    assert list(prompt.state_dict()) == ["theta"]
    img = prompt.prompt_image()
    assert img.shape == (1, 28, 28)
    assert torch.equal(img, 0.5 * prompt.frame_mask.unsqueeze(0))


def test_padding_resizes_other_sizes_bilinearly() -> None:
    x = torch.rand(2, 3, 40, 40)
    y = PaddingPrompt(32, 64, channels=3)(x)
    ref = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(y[:, :, 16:48, 16:48], ref)


def test_only_prompt_parameters_get_gradients_through_a_frozen_backbone() -> None:
    torch.manual_seed(0)
    backbone = _frozen_backbone()
    for prompt in (PaddingPrompt(16, 32, 3, IMAGENET), get_prompt("narrow", 32, 3, IMAGENET), SMMPrompt(32, 8)):
        x = torch.rand(4, 1, 16, 16)
        loss = F.cross_entropy(backbone(prompt(x)), torch.tensor([0, 1, 2, 3]))
        loss.backward()
        assert all(p.grad is None for p in backbone.parameters())
        learned = prompt.theta if isinstance(prompt, PaddingPrompt) else prompt.delta
        assert learned.grad is not None and learned.grad.abs().sum() > 0
        assert not backbone.training


def test_padding_input_not_smaller_than_output_is_an_error() -> None:
    with pytest.raises(ReprolibError, match="input_size 224"):
        PaddingPrompt(224, 224)
    with pytest.raises(ReprolibError):
        PaddingPrompt(20, 28, channels=2)


# --- channels -----------------------------------------------------------------------


def test_channel_matching() -> None:
    grey = torch.rand(2, 1, 5, 5)
    rgb = match_channels(grey, 3)
    assert rgb.shape == (2, 3, 5, 5) and torch.equal(rgb[:, 2], grey[:, 0])
    colour = torch.rand(2, 3, 5, 5)
    luma = match_channels(colour, 1)
    expected = 0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]
    assert torch.allclose(luma[:, 0], expected)
    with pytest.raises(ReprolibError):
        match_channels(torch.rand(2, 2, 5, 5), 3)


# --- watermark ------------------------------------------------------------------------


@pytest.mark.parametrize("kind,out,width", [("narrow", 224, 28), ("medium", 224, 56), ("narrow", 28, 4), ("medium", 28, 7)])
def test_watermark_frame_widths(kind: str, out: int, width: int) -> None:
    prompt = get_prompt(kind, out, 1, None)   # the width is the kind's entry's (settings)
    assert prompt.width_at_224 == get_kind(kind).settings["frame_width_at_224"]
    mask = prompt.frame_mask
    assert prompt.width == width
    assert mask[:, :width].all() and mask[:width].all() and mask[-width:].all() and mask[:, -width:].all()
    assert mask[width:-width, width:-width].sum() == 0
    assert mask.sum() == out * out - (out - 2 * width) ** 2


def test_watermark_full_is_everywhere_and_added_in_normalised_space() -> None:
    prompt = get_prompt("full", 16, 3, IMAGENET)
    assert isinstance(prompt, WatermarkPrompt) and prompt.width_at_224 is None and prompt.frame_mask.all()
    with torch.no_grad():
        prompt.delta.fill_(2.0)
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    assert torch.allclose(prompt(x), (x - mean) / std + 2.0)
    with pytest.raises(ReprolibError, match="watermark frame width must be a positive number of pixels.*'wide'"):
        WatermarkPrompt("wide")


# --- SMM --------------------------------------------------------------------------------


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_smm_generator_parameter_counts() -> None:
    assert _count(SMMPrompt(224, 8, layers=5).mask_generator) == 26_499
    assert _count(SMMPrompt(32, 8, layers=6).mask_generator) == 102_339
    five = SMMPrompt(224, 8, layers=5)
    assert sum(p.numel() for p in five.generator_parameters()) == 26_499
    assert [p.shape for p in five.delta_parameters()] == [torch.Size([3, 224, 224])]
    pools = sum(isinstance(m, nn.MaxPool2d) for m in five.mask_generator)
    assert pools == 3
    assert _count(SMMPrompt(28, 4, channels=1).mask_generator) < 26_499


def test_smm_upsampling_is_nearest_neighbour() -> None:
    small = torch.randn(2, 3, 4, 5)
    up = upsample_patches(small, 8)
    assert torch.equal(up, F.interpolate(small, scale_factor=8, mode="nearest"))
    assert torch.equal(up, small.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3))
    assert torch.equal(up[:, :, 8:16, 16:24], small[:, :, 1:2, 2:3].expand(2, 3, 8, 8))
    prompt = SMMPrompt(32, 8)
    mask = prompt.mask(torch.randn(1, 3, 32, 32))
    assert mask.shape == (1, 3, 32, 32)
    assert torch.equal(mask, F.interpolate(mask[:, :, ::8, ::8], scale_factor=8, mode="nearest"))


def test_smm_at_init_equals_resized_normalised_input() -> None:
    torch.manual_seed(0)
    prompt = SMMPrompt(32, 8, normalize=IMAGENET)
    x = torch.rand(3, 3, 20, 20)
    rx = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    assert torch.allclose(prompt(x), (rx - mean) / std, atol=1e-6)
    with torch.no_grad():
        prompt.delta.fill_(1.0)
    out = prompt(x)
    assert not torch.allclose(out, prompt.unprompted(x))
    assert torch.allclose(out - prompt.unprompted(x), prompt.mask(prompt.unprompted(x)), atol=1e-6)


@pytest.mark.parametrize("image,patch,hint", [(28, 8, "4, 2, 1"), (224, 6, "16, 8"), (224, 32, "16, 8")])
def test_smm_bad_patch_sizes(image: int, patch: int, hint: str) -> None:
    with pytest.raises(ReprolibError, match=hint) as err:
        SMMPrompt(image, patch)
    assert "\n" not in str(err.value)
    with pytest.raises(ReprolibError, match="layers"):
        SMMPrompt(32, 8, layers=7)


# --- registry and shapes ----------------------------------------------------------------


@pytest.mark.parametrize("method", PROMPTS)
@pytest.mark.parametrize("size,channels,prompt_size,target_channels", [(224, 3, 32, 1), (224, 3, 128, 3), (28, 1, 20, 1), (28, 1, 20, 3)])
def test_registry_shapes_and_finite(method: str, size: int, channels: int, prompt_size: int, target_channels: int) -> None:
    torch.manual_seed(1)
    norm = ((0.5,) * channels, (0.25,) * channels)
    prompt = get_prompt(method, size, channels, norm, prompt_size)
    x = torch.rand(2, target_channels, 24, 24)
    y = prompt(x)
    assert y.shape == (2, channels, size, size)
    assert torch.isfinite(y).all()
    assert prompt.unprompted(x).shape == y.shape


def test_registry_errors_and_smm_default_patch() -> None:
    with pytest.raises(ReprolibError, match="unknown prompt method .frame.; valid choices: " + ", ".join(PROMPTS)):
        get_prompt("frame", 224, 3, None, 32)
    with pytest.raises(ReprolibError, match="target_prompt_size"):
        get_prompt("vp", 224, 3, None)
    with pytest.raises(ReprolibError, match="bogus"):
        get_prompt("narrow", 224, 3, None, 32, bogus=1)
    assert get_prompt("smm", 28, 1, None).patch_size == 4
    assert get_prompt("smm", 224, 3, None).patch_size == 8
    assert get_prompt("smm", 384, 3, None, layers=6).layers == 6


# --- augmentation -------------------------------------------------------------------------


def test_augment_pad_is_smms_32_at_224_scaled_below() -> None:
    assert [augment_pad(s) for s in (224, 384, 32, 28, 20, 3)] == [32, 32, 5, 4, 3, 1]
    x = torch.rand(2, 1, 20, 20)   # the default pad is augment_pad: same crops, same draws
    default = augment(x, 20, torch.Generator().manual_seed(1))
    explicit = augment(x, 20, torch.Generator().manual_seed(1), pad=augment_pad(20))
    assert torch.equal(default, explicit)


def test_augment_is_seeded_and_crops_from_the_enlarged_image() -> None:
    x = torch.rand(6, 1, 28, 28)
    a = augment(x, 28, torch.Generator().manual_seed(3), flip=False)
    b = augment(x, 28, torch.Generator().manual_seed(3), flip=False)
    c = augment(x, 28, torch.Generator().manual_seed(4), flip=False)
    assert a.shape == (6, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    big = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)  # +4 at 28 px
    for i in range(6):
        windows = big[i].unfold(1, 28, 1).unfold(2, 28, 1)  # (1, 5, 5, 28, 28)
        assert any(torch.equal(windows[0, r, q], a[i, 0]) for r in range(5) for q in range(5))
    flipped = augment(x, 28, torch.Generator().manual_seed(0), pad=0, flip=True)
    is_flip = [torch.equal(flipped[i], x[i].flip(-1)) for i in range(6)]
    is_same = [torch.equal(flipped[i], x[i]) for i in range(6)]
    assert all(f or s for f, s in zip(is_flip, is_same)) and any(is_flip)


# --- SMM on ViT backbones (issue 10) --------------------------------------------------------

def test_smm_generator_depth_comes_from_the_backbone_family() -> None:
    from reprolib.prompts import layers_for_family

    assert (layers_for_family("resnet"), layers_for_family("vit")) == (5, 6)
    with pytest.raises(ReprolibError, match="unknown backbone family 'cnn'; valid choices: resnet, vit"):
        layers_for_family("cnn")


def test_smm_method_on_a_vit_uses_six_layers_and_the_vit_generator_lr() -> None:
    """The method code builds SMM's 6-layer generator (102,339 parameters) for a ViT, lr 0.001 without decay."""
    from types import SimpleNamespace

    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.transfer.prompting import new_prompt, prompt_optimizers
    from reprolib.transfer.registry import get, method_hparams

    for name, layers, params, lr, n_schedulers in (("vit_b_32", 6, 102_339, 0.001, 1), ("resnet18", 5, 26_499, 0.01, 2)):
        spec = get_spec(name)
        backbone = SimpleNamespace(input_size=spec.input_size, channels=spec.channels, mean=spec.mean,
                                   std=spec.std, family=spec.family)
        ctx = SimpleNamespace(backbone=backbone, target=None, protocol=get_protocol("smm"), epochs=4, seed=1,
                              device="cpu", hparams=method_hparams(get("smm"), get_protocol("smm")))
        prompt = new_prompt("smm", ctx)
        assert (prompt.layers, prompt.patch_size, _count(prompt.mask_generator)) == (layers, 8, params)
        optimizers, schedulers = prompt_optimizers(prompt, "smm", ctx)
        assert optimizers[1].param_groups[0]["lr"] == lr and len(schedulers) == n_schedulers
