"""Output label mapping: K target classes onto K of the backbone's S source logits (docs/methods.md s.2).

Pieces:
- `frequency_matrix(source_logits, labels, K)` -> D (S x K): D[s, t] = number of training
  images of target class t whose top-1 source prediction is s.
- `greedy_label_map(D)` -> K source indices: K times take the global maximum (s, t), map
  t -> s, remove row s and column t. Ties go to the first entry in row-major order
  (lowest source index, then lowest target index); all-zero matrices follow the same
  rule (target t -> the t-th lowest free source), so every result is deterministic.
  This is greedy matching, not the Hungarian optimum, as in the paper.
- `random_label_map(S, K, seed)`: RLM, K distinct source classes chosen with a seeded
  generator.
- `map_logits(source_logits, label_map)`: the K target logits, in target order.
- `LabelMapper(kind, num_source, num_target, seed)`: the policy the trainer calls,
  `initial(...)` once before training and `before_epoch(epoch, ...)` at the start of
  every epoch; both return the map to use.
- `ordered_batches(images, labels, batch_size)`: a fresh, in-order pass over a training
  set, the iterable a mapping pass consumes.

Policies (`LABEL_MAPS`):
- ilm: recomputed before every epoch (epoch 0 included) with the current prompt on the
  whole (possibly few-shot) training set; that epoch's test evaluation uses it.
- flm: computed once before training from the image with a ZERO frame / zero delta
  (`prompt.unprompted(x)`), as the FLM definition in the ILM-VP paper states.
  This is the default FLM.
- flm_grey: computed once before training from the prompt as initialised, i.e. for the
  padding prompt a grey sigmoid(0) = 0.5 frame. This is what the public ILM-VP code does
  (ILM-VP issue #1); it is offered so old logs can be reproduced.
- rlm: seeded random K distinct source classes, fixed.
For watermark prompts and SMM, delta is zero at init, so flm and flm_grey coincide.

The training set never includes test data: pass training batches only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from reprolib.batching import minibatches
from reprolib.errors import ReprolibError, check_choice, check_type

LABEL_MAPS = ("ilm", "flm", "flm_grey", "rlm")

Batches = Iterable[tuple[Tensor, Tensor]]


def _check_k_le_s(num_source: int, num_target: int) -> None:
    if num_target > num_source:
        raise ReprolibError(
            f"label mapping needs at most as many target classes as source classes, got K={num_target} > S={num_source}"
        )


def frequency_from_predictions(predictions: Tensor, labels: Tensor, num_source: int, num_classes: int) -> Tensor:
    """D (S x K, int64) from top-1 source predictions and target labels (1-D, same length)."""
    predictions, labels = predictions.long().flatten().cpu(), labels.long().flatten().cpu()
    if predictions.numel() != labels.numel():
        raise ReprolibError(f"got {predictions.numel()} predictions for {labels.numel()} labels")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ReprolibError(f"target labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    if predictions.numel() and (int(predictions.min()) < 0 or int(predictions.max()) >= num_source):
        raise ReprolibError(f"source predictions must lie in 0..{num_source - 1}")
    flat = predictions * num_classes + labels
    return torch.bincount(flat, minlength=num_source * num_classes).view(num_source, num_classes)


def frequency_matrix(source_logits: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """D (S x K, int64) from source logits (N x S); every target class gets a column."""
    check_type("source_logits", source_logits, Tensor)
    if source_logits.dim() != 2:
        raise ReprolibError(f"source_logits must be (N, S), got shape {tuple(source_logits.shape)}")
    return frequency_from_predictions(source_logits.argmax(dim=1), labels, source_logits.shape[1], num_classes)


def greedy_label_map(freq: Tensor) -> Tensor:
    """K source indices (int64), target t -> source map[t]; see the module docstring."""
    check_type("frequency matrix", freq, Tensor)
    if freq.dim() != 2:
        raise ReprolibError(f"frequency matrix must be (S, K), got shape {tuple(freq.shape)}")
    num_source, num_target = freq.shape
    _check_k_le_s(num_source, num_target)
    # float64 holds counts exactly up to 2^53; removed rows/columns become -inf.
    work = freq.detach().to(torch.float64).cpu().clone()
    label_map = torch.empty(num_target, dtype=torch.long)
    for _ in range(num_target):
        # argmax returns the FIRST maximal index of the flattened (row-major) matrix.
        flat = int(torch.argmax(work))
        s, t = divmod(flat, num_target)
        label_map[t] = s
        work[s, :] = float("-inf")
        work[:, t] = float("-inf")
    return label_map


def random_label_map(num_source: int, num_target: int, seed: int) -> Tensor:
    """RLM: K distinct source indices from a generator seeded with `seed`."""
    check_type("num_source", num_source, int)
    check_type("num_target", num_target, int)
    check_type("seed", seed, int)
    _check_k_le_s(num_source, num_target)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_source, generator=generator)[:num_target]


def ordered_batches(images: Tensor, labels: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """(x, y) minibatches of a stored training set in order; call again for a fresh pass."""
    for idx in minibatches(len(labels), batch_size, None):
        yield images[idx.to(images.device)], labels[idx.to(labels.device)]


def map_logits(source_logits: Tensor, label_map: Tensor) -> Tensor:
    """The K target logits: source_logits[:, label_map]."""
    return source_logits[:, label_map.to(source_logits.device)]


@torch.no_grad()
def compute_source_predictions(
    model_fn: Callable[[Tensor], Tensor],
    batches: Batches,
    modules: Iterable[nn.Module] = (),
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Top-1 source predictions and labels over `batches` (CPU int64 tensors).

    Runs `model_fn(x) -> source logits` without gradients, with every module in `modules`
    (backbone and prompt) in eval mode, restoring their train/eval flags afterwards.
    Eval mode for the prompt too, so building a map never updates the running statistics
    of SMM's BatchNorm layers.
    """
    modules = list(modules)
    saved = [(m, m.training) for mod in modules for m in mod.modules()]
    for mod in modules:
        mod.eval()
    predictions, labels = [], []
    try:
        for x, y in batches:
            if device is not None:
                x = x.to(device)
            predictions.append(model_fn(x).argmax(dim=1).cpu())
            labels.append(y.cpu())
    finally:
        for m, was_training in saved:
            m.training = was_training
    if not predictions:
        raise ReprolibError("label mapping got no training batches")
    return torch.cat(predictions).long(), torch.cat(labels).long()


class LabelMapper:
    """A label-mapping policy (ilm | flm | flm_grey | rlm) the trainer queries.

    `initial(backbone, prompt, batches)` once before training; `before_epoch(epoch,
    backbone, prompt, batches)` at the start of each epoch. Both return the current map
    (also kept in `.label_map`). `backbone(x_normalized)` must return source logits and
    `prompt(x)` / `prompt.unprompted(x)` the normalised input. `batches` must be a FRESH
    iterable of training (x, y) each call (e.g. `split.batches(256)`); it is only
    consumed when a map is computed.
    ILM computes its epoch-0 map in `initial`; `before_epoch(0)` reuses it (the prompt
    has not changed in between), later epochs recompute.
    """

    def __init__(self, kind: str, num_source: int, num_target: int, seed: int = 0):
        self.kind = check_choice("label map", kind, LABEL_MAPS)
        check_type("num_source", num_source, int)
        check_type("num_target", num_target, int)
        check_type("seed", seed, int)
        _check_k_le_s(num_source, num_target)
        self.num_source, self.num_target, self.seed = num_source, num_target, seed
        self.label_map: Tensor | None = None
        self._epoch0_ready = False

    @property
    def recomputes(self) -> bool:
        """True when the map changes during training (ILM)."""
        return self.kind == "ilm"

    def compute(self, backbone: nn.Module, prompt: nn.Module, batches: Batches, zero_prompt: bool = False,
                device: torch.device | str | None = None) -> Tensor:
        """Greedy map from the frozen backbone's predictions on prompted training images."""
        to_input = prompt.unprompted if zero_prompt else prompt
        predictions, labels = compute_source_predictions(
            lambda x: backbone(to_input(x)), batches, modules=(backbone, prompt), device=device
        )
        freq = frequency_from_predictions(predictions, labels, self.num_source, self.num_target)
        return greedy_label_map(freq)

    def initial(self, backbone: nn.Module | None, prompt: nn.Module | None, batches: Batches | None,
                device: torch.device | str | None = None) -> Tensor:
        """The map before training (RLM needs no backbone, prompt or batches)."""
        if self.kind == "rlm":
            self.label_map = random_label_map(self.num_source, self.num_target, self.seed)
        else:
            if backbone is None or prompt is None or batches is None:
                raise ReprolibError(f"label map {self.kind!r} needs the backbone, the prompt and training batches")
            self.label_map = self.compute(backbone, prompt, batches, zero_prompt=self.kind == "flm", device=device)
        self._epoch0_ready = True
        return self.label_map

    def before_epoch(self, epoch: int, backbone: nn.Module | None = None, prompt: nn.Module | None = None,
                     batches: Batches | None = None, device: torch.device | str | None = None) -> Tensor:
        """The map for this epoch: ILM recomputes (except epoch 0 right after `initial`)."""
        if self.label_map is None:
            return self.initial(backbone, prompt, batches, device=device)
        if self.kind == "ilm" and not (epoch == 0 and self._epoch0_ready):
            if backbone is None or prompt is None or batches is None:
                raise ReprolibError("label map 'ilm' needs the backbone, the prompt and training batches every epoch")
            self.label_map = self.compute(backbone, prompt, batches, device=device)
        self._epoch0_ready = False
        return self.label_map
