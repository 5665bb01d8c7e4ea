"""The flat training loop shared by every transfer method: one epoch, one evaluation, one fit.

A method is reduced to a `Trainable` (see `fit`): a function from a batch of stored inputs
to the K target logits, the modules that switch between train and eval mode, optimisers
and per-epoch schedulers, and an optional `before_epoch` hook (ILM recomputes its label
map there). Inputs live in memory as tensors (on the GPU when there is one); minibatches
are drawn by a seeded `torch.Generator`, so a seed fixes the order on every device.

On CUDA the forward pass runs under bf16 autocast (no gradient scaler needed) and the
backbone and its inputs use channels_last; on CPU everything stays float32 and
deterministic.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.batching import Forward, minibatches, predict  # noqa: F401  (predict re-exported)
from reprolib.devices import autocast  # noqa: F401  (re-exported)


def train_one_epoch(
    forward: Forward,
    optimizers: list[torch.optim.Optimizer],
    inputs: Tensor,
    labels: Tensor,
    batch_size: int,
    generator: torch.Generator,
    transform: Callable[[Tensor], Tensor] | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """One pass over (inputs, labels) in seeded random order; CE over the K target logits.

    `transform` (train augmentation) is applied to each stored minibatch before `forward`.
    Returns the mean loss and the accuracy over the epoch (on the augmented inputs).
    """
    total_loss, correct, seen = 0.0, 0, 0
    for idx in minibatches(len(labels), batch_size, generator):
        idx = idx.to(inputs.device)
        x, y = inputs[idx], labels[idx]
        if transform is not None:
            x = transform(x)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        with autocast(device):
            logits = forward(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        for opt in optimizers:
            opt.step()
        total_loss += float(loss.detach()) * len(y)
        correct += int((logits.argmax(dim=1) == y).sum())
        seen += len(y)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


def evaluate(forward: Forward, inputs: Tensor, labels: Tensor, batch_size: int,
             device: str = "cpu") -> tuple[Tensor, float]:
    """(K target logits on CPU, accuracy) over a whole split."""
    logits = predict(forward, inputs, batch_size, device)
    accuracy = float((logits.argmax(dim=1) == labels.cpu()).double().mean())
    return logits, accuracy


@dataclass
class Trainable:
    """What `fit` needs from a method (built by linear_probe.py or prompting.py)."""

    forward: Forward                                   # stored inputs -> K target logits
    modules: list[nn.Module]                           # learned modules (train/eval mode)
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]                              # stepped once per epoch
    train_inputs: Tensor
    train_labels: Tensor
    test_inputs: Tensor
    test_labels: Tensor
    val_inputs: Tensor | None = None
    val_labels: Tensor | None = None
    train_transform: Callable[[Tensor], Tensor] | None = None
    eval_forward: Forward | None = None                # default: forward
    before_epoch: Callable[[int], None] | None = None  # e.g. ILM remapping
    get_label_map: Callable[[], Tensor | None] = lambda: None
    set_label_map: Callable[[Tensor | None], None] = lambda m: None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    test_logits: Tensor
    curves: dict[str, list]
    selected_epoch: int          # the epoch whose state gave test_logits (0-based)


def _set_mode(modules: list[nn.Module], training: bool) -> None:
    for module in modules:
        module.train(training)


def fit(t: Trainable, epochs: int, batch_size: int, test_batch_size: int, seed: int,
        device: str = "cpu", progress: bool = False, desc: str = "") -> FitResult:
    """Train for `epochs`, evaluating on test every epoch (the curve); final epoch reported.

    With a validation split, the state (learned modules and label map) of the epoch with the
    best validation accuracy (first one on ties) is restored at the end and the test logits
    are recomputed with it; test accuracy never selects anything.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    eval_forward = t.eval_forward or t.forward
    curves: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "test_accuracy": [], "lr": []}
    if t.val_inputs is not None:
        curves["val_accuracy"] = []
    best: tuple[float, int, Any] | None = None
    test_logits = torch.empty(0)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        if t.before_epoch is not None:
            t.before_epoch(epoch)
        _set_mode(t.modules, True)
        stats = train_one_epoch(t.forward, t.optimizers, t.train_inputs, t.train_labels, batch_size,
                                generator, t.train_transform, device)
        curves["lr"].append(t.optimizers[0].param_groups[0]["lr"])
        for scheduler in t.schedulers:
            scheduler.step()
        _set_mode(t.modules, False)
        test_logits, test_acc = evaluate(eval_forward, t.test_inputs, t.test_labels, test_batch_size, device)
        curves["epoch"].append(epoch + 1)
        curves["train_loss"].append(stats["loss"])
        curves["train_accuracy"].append(stats["accuracy"])
        curves["test_accuracy"].append(test_acc)
        if t.val_inputs is not None:
            _, val_acc = evaluate(eval_forward, t.val_inputs, t.val_labels, test_batch_size, device)
            curves["val_accuracy"].append(val_acc)
            if best is None or val_acc > best[0]:
                snapshot = ([copy.deepcopy(m.state_dict()) for m in t.modules], t.get_label_map())
                best = (val_acc, epoch, snapshot)
        bar.set_postfix(loss=f"{stats['loss']:.3f}", test=f"{test_acc:.3f}")
    selected = epochs - 1
    if best is not None and best[1] != epochs - 1:
        _, selected, (states, label_map) = best
        for module, state in zip(t.modules, states):
            module.load_state_dict(state)
        t.set_label_map(label_map)
        test_logits, _ = evaluate(eval_forward, t.test_inputs, t.test_labels, test_batch_size, device)
    return FitResult(test_logits=test_logits, curves=curves, selected_epoch=selected)


def multistep(optimizer: torch.optim.Optimizer, milestones: list[int], gamma: float):
    """MultiStepLR stepped once per epoch, as in the public code."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
