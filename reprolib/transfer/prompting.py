"""Prompt-based transfer: padding VP, watermark prompts and SMM, with output label mapping.

The backbone is frozen and stays in eval mode (BN uses running statistics); gradients
flow through it to the prompt, whose parameters are the only ones that train. The model's
target logits are the K mapped source logits; cross-entropy runs over those K only.

- vp (docs/methods.md s.1, s.4): PaddingPrompt at the dataset's prompt_size (capped at the
  backbone's input size). Images are stored once at that size (the prompt's own resize is
  then a no-op), no augmentation. Adam on theta at the kind's prompt_lr, MultiStepLR.
- narrow / medium / full / smm (s.5): the image is resized to the backbone's input size.
  Where the kind's `augment` number is on (presets smm, embedded, smoke) training batches get
  SMM's augmentation: stored once at size+pad, then a seeded per-image random crop and a
  horizontal flip where `prompts.kinds.flips(hparams, target)` allows it (`smm`: every dataset,
  as the public code; the other presets: only targets whose `DatasetInfo.mirror_safe` is set).
  SMM has two Adam optimisers: delta at prompt_lr with MultiStepLR, the mask generator at
  the backbone family's rate (`FamilySpec.generator_lr`: generator_lr with the same decay for
  CNN families, generator_lr_vit without decay for ViTs). Watermark prompts train their delta
  like SMM's.
- Every fact that differs by prompt kind (stored size, augmentation, module, optimisers, its
  numbers) is its `PromptKind` entry's (prompts/kinds.py); this module asks the entry, and a
  run's numbers come in `MethodContext.hparams` (transfer.registry.method_hparams).
- Label maps (s.2) come from `reprolib.transfer.labelmap.LabelMapper`: ILM recomputed before every
  epoch on the whole (few-shot) training set with the current prompt, FLM / FLM-grey once,
  RLM seeded. The mapping pass uses the un-augmented training images with every module in
  eval mode (for SMM the public code passes augmented batches; we use the plain images so
  the map does not depend on the augmentation draw).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from reprolib.data.registry import DatasetInfo
from reprolib.images import to_network
from reprolib.transfer.labelmap import LabelMapper, map_logits
from reprolib.prompts import augment, augment_pad, get_kind
from reprolib.prompts.kinds import augments_under, flips
from reprolib.transfer.inputs import StoredInputs, from_split
from reprolib.transfer.method import MethodContext, TransferMethod

MAP_BATCH = 512   # inference batch of the label-mapping pass


def stored_size(kind: str, backbone, target: DatasetInfo) -> int:
    """Side at which prompt method `kind` stores images: where its prompt takes them
    (`PromptKind.stored_size`: vp at its prompt size, the others at the backbone's input size)."""
    return get_kind(kind).stored_size(backbone, target)


def load_side(kind: str, backbone, target: DatasetInfo, hparams, split: str) -> int:
    """Side at which a run asks `get_dataset` for `split` (docs/methods.md s.4, s.5).

    The original image is resized once to where the method first needs it: its stored size,
    or input + SMM's crop margin for the training split when the kind augments with these
    numbers (`hparams`: the method's under the run's protocol; the crops come from that copy).
    The label-mapping pass and test images use the stored side.
    """
    side = stored_size(kind, backbone, target)
    if augments_under(get_kind(kind), hparams) and split == "train":
        return side + augment_pad(backbone.input_size)
    return side


def new_prompt(kind: str, ctx: MethodContext) -> nn.Module:
    """The prompt module on ctx.device; SMM's generator init is drawn from ctx.seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)   # SMM's generator init; the other prompts start at zero
        prompt = get_kind(kind).build(ctx.backbone, ctx.target)
    return prompt.to(ctx.device)


def prompt_optimizers(prompt: nn.Module, kind: str, ctx: MethodContext) -> tuple[list, list]:
    """(optimisers, per-epoch schedulers) as the kind's entry says (`PromptKind.optimizers`)."""
    return get_kind(kind).optimizers(prompt, ctx.backbone, ctx.protocol, ctx.hparams, ctx.epochs)


class PromptMethod(TransferMethod):
    """A visual prompt (`kind`: vp | narrow | medium | full | smm) with a label-mapping policy."""

    def __init__(self, ctx: MethodContext, kind: str):
        self.backbone = ctx.backbone.eval().requires_grad_(False)
        self.kind, self.device = kind, ctx.device
        self.channels, self.size = self.backbone.channels, stored_size(kind, self.backbone, ctx.target)
        self.channels_last = ctx.channels_last
        self.prompt = new_prompt(kind, ctx)
        self.modules = [self.prompt]
        self.optimizers, self.schedulers = prompt_optimizers(self.prompt, kind, ctx)
        self.mapper = LabelMapper(ctx.label_map, self.backbone.num_source_classes, ctx.target.num_classes, ctx.seed)
        self.augment_pad: int | None = None
        if augments_under(get_kind(kind), ctx.hparams):
            self.augment_pad = augment_pad(self.backbone.input_size)
            self._augment_generator = torch.Generator().manual_seed(ctx.seed + 1)
            self._flip = flips(ctx.hparams, ctx.target)
            self.train_transform = self._augment
        self._mapping_set: StoredInputs | None = None

    def _augment(self, x: Tensor) -> Tensor:
        return augment(x, self.backbone.input_size, self._augment_generator, pad=self.augment_pad, flip=self._flip)

    def _mapping_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The un-augmented training set in order, fresh for each mapping pass."""
        return self._mapping_set.in_order(MAP_BATCH)

    def encode(self, images: Tensor) -> Tensor:
        """A minibatch, channel-matched, at the prompt's input size (its own resize is then a no-op)."""
        return to_network(images, self.channels, self.size).contiguous()

    def prepare(self, train: Any) -> StoredInputs:
        """The training split's inputs (at size + pad when augmenting: the crops come from that
        copy) and the initial label map; the mapping pass walks the plain inputs in order."""
        self._mapping_set = self.inputs(train)
        stored = self._mapping_set
        if self.augment_pad is not None:
            side = self.backbone.input_size + self.augment_pad
            stored = from_split(train, lambda x: to_network(x, self.channels, side).contiguous(), self.device)
        self.mapper.initial(self.backbone, self.prompt,
                            self._mapping_batches() if self.mapper.policy.reads_training_set else None)
        return stored

    def before_epoch(self, epoch: int) -> None:
        self.mapper.before_epoch(epoch, self.backbone, self.prompt, self._mapping_batches())

    def forward(self, x: Tensor) -> Tensor:
        return self.target_logits(self.backbone(self.prompted(x)))

    def prompted(self, x: Tensor) -> Tensor:
        """Stored inputs -> the prompted backbone input (the part of `forward` before the
        backbone; grouped runs concatenate these into one backbone batch)."""
        z = self.prompt(x)
        return z.contiguous(memory_format=torch.channels_last) if self.channels_last else z

    def target_logits(self, source_logits: Tensor) -> Tensor:
        """The backbone's source logits -> the K target logits through this run's label map."""
        return map_logits(source_logits, self.mapper.label_map)

    @property
    def label_map(self) -> Tensor | None:
        return None if self.mapper.label_map is None else self.mapper.label_map.clone()

    @label_map.setter
    def label_map(self, value: Tensor | None) -> None:
        self.mapper.label_map = value

    def learned_state(self) -> dict[str, Tensor]:
        """Learned prompt parameters (and SMM's BN statistics) plus the final map, for the .npz."""
        state = {f"prompt.{k}": v.detach().cpu() for k, v in self.prompt.state_dict().items()}
        if self.mapper.label_map is not None:
            state["label_map"] = self.mapper.label_map.cpu()
        return state
