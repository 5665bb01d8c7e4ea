"""The flat training loop shared by every transfer method: one epoch, one evaluation, one fit.

`fit(method, splits, settings)` trains a `TransferMethod` (reprolib.transfer.method) on image
splits (reprolib.data.split.ImageSplit): the method gives their stored inputs (`prepare` /
`inputs`, reprolib.transfer.inputs), which the loop gathers one minibatch at a time, on the
device; no split is ever held whole as float. Minibatches are drawn by a seeded
`torch.Generator` on the CPU, so a seed fixes the order on every device. The loss and the
correct count are summed on the device and read back once per epoch, in one read (no host sync
per step: reprolib.devices.to_host, site "training"); evaluation reads its logits once per pass. Test and
validation are evaluated on the protocol's schedule (`Protocol.eval_epochs`: a tenth of the
run by default, and always the last epoch), not after every epoch as the public loops do.

On CUDA the training forward pass runs under bf16 autocast (no gradient scaler needed: bf16
has float32's exponent range; the public RLT code uses fp16 with a GradScaler instead, see
docs/methods.md s.4), cuDNN picks its fastest kernels (`cudnn.benchmark`), and the backbone
and its inputs use channels_last; evaluation (`evaluate`, via transfer.inputs.predict -> batching.predict)
runs in float32 on every device, as the public test loops (docs/methods.md s.4). On CPU
everything stays float32 and deterministic.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from reprolib.batching import Forward, minibatches
from reprolib.data.split import ImageSplit, from_tensors
from reprolib.devices import autocast, to_host
from reprolib.transfer.inputs import StoredInputs, predict
from reprolib.transfer.method import TransferMethod


class EpochTotals:
    """Loss sum, correct count and images seen over an epoch, kept on the device: read once at
    the end (`mean`), not per step. float64, so the sum is the one Python floats gave."""

    def __init__(self, device: str):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0

    def add(self, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        self.loss += loss.detach().double() * len(y)
        self.correct += (logits.argmax(dim=1) == y).sum()
        self.seen += len(y)

    def mean(self) -> dict[str, float]:
        """The epoch's mean loss and accuracy: one read from the device (the count is exact in float64)."""
        seen = max(self.seen, 1)
        loss, correct = to_host(torch.stack([self.loss, self.correct.double()]), "training").tolist()
        return {"loss": loss / seen, "accuracy": int(correct) / seen}


def train_one_epoch(
    forward: Forward,
    optimizers: list[torch.optim.Optimizer],
    data: StoredInputs,
    batch_size: int,
    generator: torch.Generator,
    transform: Callable[[Tensor], Tensor] | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """One pass over the stored inputs in seeded random order; CE over the K target logits.

    `transform` (train augmentation) is applied to each gathered minibatch before `forward`.
    Returns the mean loss and the accuracy over the epoch (on the augmented inputs).
    """
    totals = EpochTotals(device)
    for x, y in data.batches(minibatches(len(data), batch_size, generator)):
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
        totals.add(loss, logits, y)
    return totals.mean()


def evaluate(forward: Forward, inputs: StoredInputs, batch_size: int) -> tuple[Tensor, float]:
    """(K target logits on CPU, accuracy) over a whole split's stored inputs, minibatch by minibatch."""
    logits = predict(forward, inputs, batch_size)
    accuracy = float((logits.argmax(dim=1) == inputs.labels).double().mean())
    return logits, accuracy


def _as_split(data: Any) -> Any:
    """An ImageSplit as it is; an (images, labels) pair (tests, benchmarks) as an in-memory one."""
    return from_tensors(*data) if isinstance(data, tuple) else data


@dataclass(frozen=True)
class Splits:
    """The run's image splits (ImageSplit; an (images, labels) pair is taken as an in-memory one)."""

    train: ImageSplit
    test: ImageSplit
    val: ImageSplit | None = None

    def __post_init__(self) -> None:
        for name in ("train", "test", "val"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _as_split(getattr(self, name)))


@dataclass(frozen=True)
class FitSettings:
    """How long and in what batches to train; `seed` fixes the minibatch order."""

    epochs: int
    batch_size: int
    test_batch_size: int
    seed: int
    device: str = "cpu"
    progress: bool = False
    desc: str = ""
    eval_epochs: tuple[int, ...] | None = None   # 1-based epochs evaluated (None: every one)

    def evaluates(self, epoch: int) -> bool:
        """Whether test (and val) are evaluated after 0-based `epoch`; the last one always is."""
        last = epoch == self.epochs - 1
        return last or self.eval_epochs is None or (epoch + 1) in self.eval_epochs


@dataclass
class FitResult:
    test_logits: Tensor
    curves: dict[str, list]
    selected_epoch: int          # the epoch whose state gave test_logits (0-based)


@dataclass
class _Stored:
    """The splits as the method's stored inputs (what `forward` takes, gathered per minibatch)."""

    train: StoredInputs
    test: StoredInputs
    val: StoredInputs | None


def _store(method: TransferMethod, splits: Splits) -> _Stored:
    train = method.prepare(splits.train)
    test = method.inputs(splits.test)
    val = None if splits.val is None else method.inputs(splits.val)
    return _Stored(train, test, val)


def _set_mode(modules: list[nn.Module], training: bool) -> None:
    for module in modules:
        module.train(training)


class _BestEpoch:
    """The state (learned modules and label map) of the epoch best on validation (first on ties)."""

    def __init__(self) -> None:
        self.accuracy: float | None = None
        self.epoch = -1
        self.states: list[dict[str, Any]] = []
        self.label_map: Tensor | None = None

    def offer(self, method: TransferMethod, epoch: int, accuracy: float) -> None:
        if self.accuracy is None or accuracy > self.accuracy:
            self.accuracy, self.epoch = accuracy, epoch
            self.states = [copy.deepcopy(m.state_dict()) for m in method.modules]
            self.label_map = method.label_map

    def restore(self, method: TransferMethod) -> None:
        for module, state in zip(method.modules, self.states):
            module.load_state_dict(state)
        method.label_map = self.label_map


def _new_curves(with_val: bool) -> dict[str, list]:
    """Per-epoch training curves, and test (val) accuracy at the evaluated epochs (`eval_epoch`)."""
    curves: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "lr": [],
                               "eval_epoch": [], "test_accuracy": []}
    if with_val:
        curves["val_accuracy"] = []
    return curves


class RunLoop:
    """One run's loop state around its training passes: stored inputs, minibatch generator,
    curves, best-epoch snapshot. `fit` drives one; reprolib.transfer.grouped drives several
    whose training passes share backbone batches.
    """

    def __init__(self, method: TransferMethod, splits: Splits, settings: FitSettings):
        self.method, self.settings = method, settings
        if str(settings.device).startswith("cuda"):
            torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN time and keep its fastest kernels
        self.stored = _store(method, splits)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.curves = _new_curves(self.stored.val is not None)
        self.best = _BestEpoch()
        self.test_logits = torch.empty(0)

    def start_epoch(self, epoch: int) -> None:
        """before_epoch (ILM remaps), then the learned modules in train mode."""
        self.method.before_epoch(epoch)
        _set_mode(self.method.modules, True)

    def end_epoch(self, epoch: int, stats: dict[str, float]) -> None:
        """Schedulers, eval mode, the epoch's curves, and test / val on the evaluation schedule."""
        method, settings, curves = self.method, self.settings, self.curves
        stats["lr"] = method.optimizers[0].param_groups[0]["lr"]
        for scheduler in method.schedulers:
            scheduler.step()
        _set_mode(method.modules, False)
        for key, value in (("lr", stats["lr"]), ("epoch", epoch + 1), ("train_loss", stats["loss"]),
                           ("train_accuracy", stats["accuracy"])):
            curves[key].append(value)
        if not settings.evaluates(epoch):
            return
        self.test_logits, test_acc = evaluate(method.forward, self.stored.test, settings.test_batch_size)
        curves["eval_epoch"].append(epoch + 1)
        curves["test_accuracy"].append(test_acc)
        if self.stored.val is not None:
            _, val_acc = evaluate(method.forward, self.stored.val, settings.test_batch_size)
            curves["val_accuracy"].append(val_acc)
            self.best.offer(method, epoch, val_acc)

    def result(self) -> FitResult:
        """The reported state: the last epoch's, or the best-on-validation epoch's (restored)."""
        selected = self.settings.epochs - 1
        if self.stored.val is not None and self.best.epoch != selected:
            selected = self.best.epoch
            self.best.restore(self.method)
            self.test_logits, _ = evaluate(self.method.forward, self.stored.test, self.settings.test_batch_size)
        return FitResult(test_logits=self.test_logits, curves=self.curves, selected_epoch=selected)


def fit(method: TransferMethod, splits: Splits, settings: FitSettings) -> FitResult:
    """Train for `settings.epochs`; test (and val) evaluated at `settings.eval_epochs` and after
    the last epoch, whose state is reported.

    With a validation split, the state (learned modules and label map) of the evaluated epoch
    with the best validation accuracy (first one on ties) is restored at the end and the test
    logits are recomputed with it; test accuracy never selects anything. Evaluation changes
    no state and draws no random numbers, so the final metrics do not depend on the schedule.
    """
    loop = RunLoop(method, splits, settings)
    bar = tqdm(range(settings.epochs), desc=settings.desc, disable=not settings.progress, leave=False)
    for epoch in bar:
        loop.start_epoch(epoch)
        stats = train_one_epoch(method.forward, method.optimizers, loop.stored.train, settings.batch_size,
                                loop.generator, method.train_transform, settings.device)
        loop.end_epoch(epoch, stats)
        bar.set_postfix(loss=f"{stats['loss']:.3f}")
    return loop.result()
