"""The transfer-method interface: what the training loop, the OOD scorer and the record need.

A method on a frozen backbone (linear probe, padding prompt, watermark prompts, SMM) is a
`TransferMethod`. Its life in one run:

1. built from a `MethodContext` (backbone, target dataset facts, protocol, epochs, seed,
   device, label-map policy) by `reprolib.transfer.registry.build_method`;
2. `prepare(train_split)` once: the stored training inputs (reprolib.transfer.inputs: what
   the loop's minibatches gather) and, for prompts, the label map before training;
3. `inputs(split)` for test / validation splits and OOD images: their stored inputs, gathered
   per minibatch through `encode` (a minibatch of raw [0, 1] images -> what `forward` takes:
   channel-matched, resized copies for prompts) or, for the cached LP, features computed once;
4. every epoch: `before_epoch(epoch)` (ILM remaps), then minibatches of stored inputs through
   `train_transform` (augmentation, or None) and `forward` (K target logits), stepping
   `optimizers`, then `schedulers` once per epoch; `modules` switch train / eval mode;
5. `learned_state()` for the run's .npz and `label_map` (None for LP) for the record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from reprolib.data.registry import DatasetInfo
from reprolib.protocols import Protocol
from reprolib.transfer.inputs import StoredInputs, from_split


@dataclass(frozen=True)
class MethodContext:
    """Everything a method's builder needs, in one object.

    `backbone` is a reprolib Backbone (frozen here); `target` the target dataset's facts
    (num_classes, prompt_size, mirror_safe); `label_map` the policy name for prompt methods
    (ilm | flm | flm_grey | rlm), None for LP; `feature_store` a
    reprolib.transfer.feature_cache.FeatureStore the cached LP reads and writes its features
    through (None: computed in the run, as before); `hparams` the method's own numbers under
    `protocol` ({name: value}: transfer.registry.method_hparams, which `build_method` fills in).
    """

    backbone: Any
    target: DatasetInfo
    protocol: Protocol
    epochs: int
    seed: int
    device: str = "cpu"
    label_map: str | None = None
    feature_store: Any = None
    hparams: Mapping[str, Any] | None = None

    @property
    def channels_last(self) -> bool:
        """CUDA runs feed the backbone channels_last inputs (faster convolutions)."""
        return str(self.device).startswith("cuda")


class TransferMethod(ABC):
    """One transfer method; see the module docstring for the order the loop calls it in."""

    modules: list[nn.Module]                    # learned modules (train / eval mode, best-epoch snapshot)
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]                       # stepped once per epoch
    train_transform: Callable[[Tensor], Tensor] | None = None   # applied to each training minibatch

    device: str = "cpu"

    @abstractmethod
    def encode(self, images: Tensor) -> Tensor:
        """A minibatch of raw [0, 1] images (N, C, H, W) on the device -> the inputs `forward` takes."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """A minibatch of stored inputs -> the K target logits."""

    @abstractmethod
    def learned_state(self) -> dict[str, Tensor]:
        """What was learned, as CPU tensors, for the run's .npz file."""

    def inputs(self, split: Any) -> StoredInputs:
        """A split's (ImageSplit, or anything with `labels` and `gather`) stored inputs:
        gathered and encoded one minibatch at a time."""
        return from_split(split, self.encode, self.device)

    def prepare(self, train: Any) -> StoredInputs:
        """Called once before training with the training split; returns its stored inputs."""
        return self.inputs(train)

    def before_epoch(self, epoch: int) -> None:
        """Hook at the start of every epoch (ILM recomputes its label map); nothing by default."""

    @property
    def label_map(self) -> Tensor | None:
        """The K source indices the target logits are read from (a copy); None without a map."""
        return None

    @label_map.setter
    def label_map(self, value: Tensor | None) -> None:
        if value is not None:
            raise TypeError(f"{type(self).__name__} has no label map to set")

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)
