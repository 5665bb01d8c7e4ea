"""Upstream (source-task) training: the recipe, one training run, and evaluation.

The `python -m reprolib upstream` command, which makes the dense model (IMP level 0)
with this, is `reprolib.sparsity.upstream_cli`.

Flat torchvision-reference style: data are in-memory tensors, one loop over iterations.
The learning rate is a function of the global iteration, and each epoch's shuffle comes
from a generator seeded by (seed, epoch), so a run can start at any iteration (IMP
rewinding) and the same seed gives the same numbers on CPU. When a mask is given,
weight *= mask after every optimizer step, so pruned weights stay exactly zero.
Training always runs on the CPU, whatever the profile's device: the model is small, and
the CPU keeps the dense model and every ticket bit-identical from machine to machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from reprolib.config import (MAX_COUNT, Count, NonNegative, NonNegativeFloat, Positive, Seed, choice_of, schema,
                             validated)
from reprolib.data import get_dataset
from reprolib.determinism import CPU_THREADS
from reprolib.errors import ReprolibError
from reprolib.schedules import warmup_cosine, warmup_lr
from reprolib.sparsity.masks import apply_mask

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "multistep", "constant")
AUGMENTATIONS = ("none", "flip")


Subset = Annotated[int, Field(ge=-1, lt=MAX_COUNT)]   # -1 = all


@schema("upstream recipe key", "upstream.")
class UpstreamRecipe:
    """How the upstream model trains: these defaults, then the profile's `upstream:` dict on top."""

    epochs: Count = 4
    batch_size: Count = 128
    lr: Positive = 0.1
    optimizer: Annotated[str, choice_of("upstream optimizer", lambda: OPTIMIZERS)] = "sgd"   # sgd (momentum, Nesterov) | adam
    momentum: NonNegativeFloat = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: Annotated[str, choice_of("upstream schedule", lambda: SCHEDULES)] = "cosine"   # per-iteration cosine to 0 after linear warm-up
    warmup_epochs: NonNegativeFloat = 0.5
    augment: Annotated[str, choice_of("upstream augment", lambda: AUGMENTATIONS)] = "flip"   # random horizontal flip (Fashion-MNIST is flip-safe)
    seed: Seed = 0
    train_subset: Subset = -1        # first N training images (-1 = all 60,000)
    test_subset: Subset = -1         # first N test images (-1 = all 10,000)
    eval_batch_size: Count = 1000
    # torch CPU threads while training / evaluating. 0 = the protocol's CPU_THREADS (1,
    # reprolib.determinism): results then do not depend on the machine's core count. A
    # larger value is faster on an idle machine (two threads ~4,000 img/s against ~2,200
    # for one on 2 cores) but its numbers hold only for that thread count (ATen splits
    # reductions per thread); it is stored in the tickets' recipe.
    num_threads: NonNegative = 0

    @classmethod
    def for_profile(cls, profile: Any) -> "UpstreamRecipe":
        """The dataclass defaults with the profile's `upstream:` values applied, validated."""
        return cls().updated(getattr(profile, "upstream", {}) or {})

    def updated(self, values: dict[str, Any]) -> "UpstreamRecipe":
        """A copy with `values` applied, checked by the schema (unknown keys, types, ranges, choices,
        finite numbers: one line each); an int given for a float field is stored as a float."""
        return validated(UpstreamRecipe, {**dataclasses.asdict(self), **values}, "upstream")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SourceData:
    """Upstream train/test tensors: images float32 (N, C, H, W) in [0, 1], labels int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def subset(self, recipe: UpstreamRecipe) -> "SourceData":
        n, m = recipe.train_subset, recipe.test_subset
        cut = (lambda t, k: t if k < 0 else t[:k])
        return SourceData(cut(self.train_images, n), cut(self.train_labels, n),
                          cut(self.test_images, m), cut(self.test_labels, m))


def load_source_data(profile: Any) -> SourceData:
    """The profile's source dataset (Fashion-MNIST for the embedded profiles) via reprolib.data."""
    root, download = profile.path("data_root"), profile.download
    train_x, train_y = get_dataset(profile.source, "train", root=root, download=download).tensors()
    test_x, test_y = get_dataset(profile.source, "test", root=root, download=download).tensors()
    return SourceData(train_x, train_y, test_x, test_y)


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """torch.set_num_threads(n) for the block, restored afterwards (n = 0: the protocol's CPU_THREADS)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n if n > 0 else CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    # drop the ragged last batch (a batch of 1 breaks BatchNorm); at least one step
    return max(1, n_images // batch_size)


def learning_rate(recipe: UpstreamRecipe, iteration: int, total: int, per_epoch: int) -> float:
    """The recipe's rate at `iteration`: linear warm-up, then cosine / multistep / constant."""
    warmup = int(recipe.warmup_epochs * per_epoch)
    if recipe.schedule == "cosine":
        return warmup_cosine(recipe.lr, iteration, total, warmup)
    if iteration < warmup:
        return warmup_lr(recipe.lr, iteration, warmup)
    if recipe.schedule == "constant":
        return recipe.lr
    return recipe.lr * 0.1 ** sum(iteration >= int(f * total) for f in (0.5, 0.75))   # multistep: x0.1 at 50%, 75%


def make_optimizer(params, recipe: UpstreamRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0,
                           weight_decay=recipe.weight_decay)


def _seed(*parts: int) -> int:
    # hash of a tuple of ints is stable across processes (PYTHONHASHSEED only salts str/bytes)
    return hash(parts) & 0x7FFF_FFFF_FFFF_FFFF


def train(backbone, images: torch.Tensor, labels: torch.Tensor, recipe: UpstreamRecipe,
          mask: dict[str, torch.Tensor] | None = None, start_iteration: int = 0,
          rewind_iteration: int | None = None, desc: str | None = None,
          progress: bool = True) -> dict[str, torch.Tensor] | None:
    """Train `backbone` in place on [0, 1] `images` from `start_iteration` to the end.

    Returns a copy of the state dict taken just before iteration `rewind_iteration`
    (0 = the initial weights; the total = the final weights), or None when that
    iteration is not in this run. Starting at iteration k sees exactly the batches,
    flips and learning rates that iterations k.. of a full run see (fresh optimizer state).
    Many parameters because the IMP hooks (mask, start and rewind iterations) sit beside the
    data and recipe, so that dense training and ticket retraining are this one loop.
    """
    per_epoch = steps_per_epoch(len(images), recipe.batch_size)
    total = recipe.epochs * per_epoch
    if not 0 <= start_iteration <= total:
        raise ReprolibError(f"start iteration {start_iteration} outside this recipe's 0..{total} iterations")
    if mask is not None:
        apply_mask(backbone.net, mask)
    optimizer = make_optimizer(backbone.parameters(), recipe)
    snapshot = (lambda: {k: v.detach().clone() for k, v in backbone.net.state_dict().items()})
    rewind_state, order = None, None
    bar = tqdm(range(start_iteration, total), desc=desc, disable=not progress, mininterval=2.0, leave=False)
    backbone.train()
    with cpu_threads(recipe.num_threads):
        for iteration in bar:
            if iteration == rewind_iteration:
                rewind_state = snapshot()
            epoch, step = divmod(iteration, per_epoch)
            if order is None or step == 0:
                generator = torch.Generator().manual_seed(_seed(recipe.seed, 0, epoch))
                order = torch.randperm(len(images), generator=generator)
            x, y = _minibatch(images, labels, order, step, iteration, recipe)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, iteration, total, per_epoch)
            loss = F.cross_entropy(backbone(backbone.normalize(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if mask is not None:
                apply_mask(backbone.net, mask)  # pruned weights stay exactly 0 despite momentum / decay
            if progress and step % 50 == 0:
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", refresh=False)
    if rewind_iteration == total:
        rewind_state = snapshot()
    backbone.eval()
    return rewind_state


def _minibatch(images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, step: int, iteration: int,
               recipe: UpstreamRecipe) -> tuple[torch.Tensor, torch.Tensor]:
    """Step `step` of the epoch's shuffled `order`, flipped by a generator seeded per iteration."""
    index = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
    x, y = images[index], labels[index]
    if recipe.augment == "flip":
        generator = torch.Generator().manual_seed(_seed(recipe.seed, 1, iteration))
        flip = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    return x, y


@torch.no_grad()
def evaluate(backbone, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000,
             num_threads: int = 1) -> dict[str, float]:
    """Source-task accuracy (fraction) and mean cross-entropy, in eval mode."""
    backbone.eval()
    correct, loss_sum = 0, 0.0
    with cpu_threads(num_threads):
        for start in range(0, len(images), batch_size):
            x, y = images[start:start + batch_size], labels[start:start + batch_size]
            logits = backbone(backbone.normalize(x))
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    n = max(1, len(images))
    return {"accuracy": correct / n, "loss": loss_sum / n}
