"""Prompt-based transfer: padding VP, watermark prompts and SMM, with output label mapping.

The backbone is frozen and stays in eval mode (BN uses running statistics); gradients
flow through it to the prompt, whose parameters are the only ones that train. The model's
target logits are the K mapped source logits; cross-entropy runs over those K only.

- vp (methods.md s.1, s.4): PaddingPrompt at the dataset's prompt_size (capped at the
  backbone's input size). Images are stored once at prompt_size (the prompt's own resize is
  then a no-op), no augmentation. Adam on theta at protocol.prompt_lr, MultiStepLR.
- narrow / medium / full / smm (s.5): the image is resized to the backbone's input size.
  Under a protocol with `augment` (smm, embedded, smoke) training batches get SMM's
  augmentation: stored once at size+pad, then a seeded per-image random crop and
  (except for digits and letters, which are not mirror-invariant) a horizontal flip.
  SMM has two Adam optimisers: delta at prompt_lr with MultiStepLR, the mask generator at
  generator_lr with the same decay (ResNet-style backbones) or generator_lr_vit without
  decay (ViT). Watermark prompts train their delta like SMM's.
- Label maps (s.2) come from `reprolib.labelmap.LabelMapper`: ILM recomputed before every
  epoch on the whole (few-shot) training set with the current prompt, FLM / FLM-grey once,
  RLM seeded. The mapping pass uses the un-augmented training images with every module in
  eval mode (for SMM the public code passes augmented batches; we use the plain images so
  the map does not depend on the augmentation draw).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolib.labelmap import LabelMapper, map_logits
from reprolib.prompts import augment, get_prompt, match_channels, resize
from reprolib.protocols import Protocol
from reprolib.transfer.train import Trainable, multistep

NO_FLIP_TARGETS = ("digits", "glyphs", "svhn")   # digits and letters change meaning when mirrored
MAP_BATCH = 512                                  # inference batch of the label-mapping pass


def augment_pad(size: int) -> int:
    """SMM's +32 px at 224, scaled to smaller inputs (28 px -> +4); as prompts.augment."""
    return 32 if size >= 224 else max(1, round(32 * size / 224))


def store(images: Tensor, channels: int, size: int, batch: int = 1024) -> Tensor:
    """Channel-matched, resized copy of a [0, 1] image tensor, built in chunks."""
    out = [resize(match_channels(images[i:i + batch], channels), size).contiguous()
           for i in range(0, len(images), batch)]
    return torch.cat(out) if out else images.new_empty(0, channels, size, size)


def batches_of(images: Tensor, labels: Tensor, batch_size: int = MAP_BATCH):
    """A fresh iterable of (x, y) in order, as LabelMapper wants for each mapping pass."""
    return [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(images), batch_size)]


def build_prompting(backbone, method: str, label_map: str, protocol: Protocol, epochs: int,
                    num_classes: int, prompt_size: int, target: str, seed: int,
                    train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                    val: tuple[Tensor, Tensor] | None = None, device: str = "cpu") -> Trainable:
    """The prompt method's Trainable (prompt, optimisers, label mapper, stored inputs)."""
    backbone.eval().requires_grad_(False)
    size, channels = backbone.input_size, backbone.channels
    normalize = (backbone.mean, backbone.std)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)   # SMM's generator init; the other prompts start at zero
        if method == "vp":
            prompt = get_prompt("vp", size, channels, normalize, target_prompt_size=min(prompt_size, size))
        else:
            prompt = get_prompt(method, size, channels, normalize)
    prompt = prompt.to(device)
    stored_size = prompt.input_size if method == "vp" else size

    milestones = protocol.milestone_epochs(epochs)
    if method == "smm":
        delta_opt = torch.optim.Adam(prompt.delta_parameters(), lr=protocol.prompt_lr, weight_decay=0.0)
        is_vit = "vit" in getattr(backbone, "name", "")
        gen_opt = torch.optim.Adam(prompt.generator_parameters(),
                                   lr=protocol.generator_lr_vit if is_vit else protocol.generator_lr,
                                   weight_decay=0.0)
        optimizers = [delta_opt, gen_opt]
        schedulers = [multistep(delta_opt, milestones, protocol.gamma)]
        if not is_vit:
            schedulers.append(multistep(gen_opt, milestones, protocol.gamma))
    else:
        optimizer = torch.optim.Adam(prompt.parameters(), lr=protocol.prompt_lr, weight_decay=0.0)
        optimizers, schedulers = [optimizer], [multistep(optimizer, milestones, protocol.gamma)]

    train_x = store(train[0], channels, stored_size)
    transform = None
    if method != "vp" and protocol.augment:
        pad = augment_pad(size)
        aug_generator = torch.Generator().manual_seed(seed + 1)
        flip = target not in NO_FLIP_TARGETS
        augmented_store = store(train[0], channels, size + pad)

        def transform(x: Tensor) -> Tensor:
            return augment(x, size, aug_generator, pad=pad, flip=flip)
    else:
        augmented_store = train_x

    mapper = LabelMapper(label_map, backbone.num_source_classes, num_classes, seed)
    mapping_batches = lambda: batches_of(train_x, train[1])  # noqa: E731  (fresh each pass)
    channels_last = str(device).startswith("cuda")

    def source_logits(x: Tensor) -> Tensor:
        z = prompt(x)
        if channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        return backbone(z)

    def forward(x: Tensor) -> Tensor:
        return map_logits(source_logits(x), mapper.label_map)

    def before_epoch(epoch: int) -> None:
        mapper.before_epoch(epoch, backbone, prompt, mapping_batches())

    def set_label_map(m: Tensor | None) -> None:
        mapper.label_map = m

    mapper.initial(backbone, prompt, mapping_batches() if label_map != "rlm" else None)
    trainable = Trainable(
        forward=forward, modules=[prompt], optimizers=optimizers, schedulers=schedulers,
        train_inputs=augmented_store, train_labels=train[1],
        test_inputs=store(test[0], channels, stored_size), test_labels=test[1],
        train_transform=transform, before_epoch=before_epoch,
        get_label_map=lambda: None if mapper.label_map is None else mapper.label_map.clone(),
        set_label_map=set_label_map,
    )
    if val is not None:
        trainable.val_inputs, trainable.val_labels = store(val[0], channels, stored_size), val[1]
    trainable.extra.update(prompt=prompt, mapper=mapper,
                           encode=lambda x: store(x, channels, stored_size))   # for OOD scoring
    return trainable


def prompt_state(trainable: Trainable) -> dict[str, Tensor]:
    """Learned prompt parameters (and SMM's BN statistics) plus the final map, for the .npz."""
    state = {f"prompt.{k}": v.detach().cpu() for k, v in trainable.extra["prompt"].state_dict().items()}
    label_map = trainable.extra["mapper"].label_map
    if label_map is not None:
        state["label_map"] = label_map.cpu()
    return state
