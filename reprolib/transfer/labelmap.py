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

Policies: the label-map registry (`LabelMapKind` entries, `get_label_map(name)`, names in
`LABEL_MAPS`). Each entry owns its facts: how it maps (`make_map`), whether it
reads the training set for it (`reads_training_set`), whether it recomputes before every epoch
(`recomputes`), how many mapping passes over the training set a run of E epochs costs
(`mapping_passes`, derived from those two, so every policy is costed by the same rule), and its
display name. Code asks the entry; nothing outside this registry compares label-map names.
- ilm: recomputed before every epoch (epoch 0 included) with the current prompt on the
  whole (possibly few-shot) training set; that epoch's test evaluation uses it.
- flm: computed once before training from the image with a ZERO frame / zero delta
  (`prompt.unprompted(x)`), as the FLM definition in the ILM-VP paper states.
  This is the default FLM.
- flm_grey: computed once before training from the prompt as initialised, i.e. for the
  padding prompt a grey sigmoid(0) = 0.5 frame. This is what the public ILM-VP code does
  (ILM-VP issue #1); it is offered so old logs can be reproduced. One mapping pass, as flm.
- rlm: seeded random K distinct source classes, fixed; no mapping pass.
For watermark prompts and SMM, delta is zero at init, so flm and flm_grey coincide.

The training set never includes test data: pass training batches only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from reprolib.batching import minibatches
from reprolib.errors import ReprolibError, check_choice, check_type

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


def _greedy_from_prompt(mapper: LabelMapper, backbone: nn.Module, prompt: nn.Module, batches: Batches,
                        device: Any) -> Tensor:
    """The greedy map of the backbone's predictions on the training images through the prompt as it is."""
    return mapper.compute(backbone, prompt, batches, device=device)


def _greedy_from_zero_prompt(mapper: LabelMapper, backbone: nn.Module, prompt: nn.Module, batches: Batches,
                             device: Any) -> Tensor:
    """The greedy map on the training images with the learned part removed (`prompt.unprompted`)."""
    return mapper.compute(backbone, prompt, batches, zero_prompt=True, device=device)


def _seeded_random(mapper: LabelMapper, backbone: Any, prompt: Any, batches: Any, device: Any) -> Tensor:
    """K distinct source classes drawn with the run's seed (no image is read)."""
    return random_label_map(mapper.num_source, mapper.num_target, mapper.seed)


@dataclass(frozen=True)
class LabelMapKind:
    """One label-mapping policy: how its maps are made and what that costs (module docstring)."""

    name: str
    display: str                     # how tables and help texts name it
    summary: str
    # How it maps: (mapper, backbone, prompt, training batches, device) -> a map, made before
    # training and, when it recomputes, again before every epoch.
    make_map: Callable[..., Tensor]
    reads_training_set: bool = True  # making a map is a forward pass over the training images
    recomputes: bool = False         # a new map before every epoch (the first one included)
    default: bool = False            # what a prompt method uses when no label map is named

    def mapping_passes(self, epochs: int) -> int:
        """Forward passes over the training set a run of `epochs` spends on mapping."""
        if not self.reads_training_set:
            return 0
        return epochs if self.recomputes else 1


_KINDS: dict[str, LabelMapKind] = {kind.name: kind for kind in (
    LabelMapKind("ilm", "ILM", "iterative: recomputed with the current prompt before every epoch",
                 _greedy_from_prompt, recomputes=True, default=True),
    LabelMapKind("flm", "FLM", "frequency map, once, from the images without the prompt (the paper's FLM)",
                 _greedy_from_zero_prompt),
    LabelMapKind("flm_grey", "FLM (grey frame)", "frequency map, once, through the prompt as initialised "
                 "(the public ILM-VP code)", _greedy_from_prompt),
    LabelMapKind("rlm", "RLM", "random: K distinct source classes drawn with the run's seed", _seeded_random,
                 reads_training_set=False),
)}
LABEL_MAPS = tuple(_KINDS)


def get_label_map(name: str) -> LabelMapKind:
    """The entry of label map `name`; an unknown name is a one-line error listing the choices."""
    return _KINDS[check_choice("label map", name, LABEL_MAPS)]


def default_label_map() -> str:
    """The label map a prompt method uses when none is named."""
    return next(name for name, kind in _KINDS.items() if kind.default)


class LabelMapper:
    """A label-mapping policy (a `LabelMapKind`: ilm | flm | flm_grey | rlm) the trainer queries.

    `initial(backbone, prompt, batches)` once before training; `before_epoch(epoch,
    backbone, prompt, batches)` at the start of each epoch. Both return the current map
    (also kept in `.label_map`). `backbone(x_normalized)` must return source logits and
    `prompt(x)` / `prompt.unprompted(x)` the normalised input. `batches` must be a FRESH
    iterable of training (x, y) each call (e.g. `split.batches(256)`); it is only
    consumed when a map is computed.
    A recomputing policy (ILM) computes its epoch-0 map in `initial`; `before_epoch(0)` reuses
    it (the prompt has not changed in between), later epochs recompute.
    """

    def __init__(self, kind: str, num_source: int, num_target: int, seed: int = 0):
        self.policy = get_label_map(kind)
        self.kind = self.policy.name
        check_type("num_source", num_source, int)
        check_type("num_target", num_target, int)
        check_type("seed", seed, int)
        _check_k_le_s(num_source, num_target)
        self.num_source, self.num_target, self.seed = num_source, num_target, seed
        self.label_map: Tensor | None = None
        self._epoch0_ready = False

    @property
    def recomputes(self) -> bool:
        """True when the map changes during training (the policy's entry says: ILM)."""
        return self.policy.recomputes

    def compute(self, backbone: nn.Module, prompt: nn.Module, batches: Batches, zero_prompt: bool = False,
                device: torch.device | str | None = None) -> Tensor:
        """Greedy map from the frozen backbone's predictions on prompted training images."""
        to_input = prompt.unprompted if zero_prompt else prompt
        predictions, labels = compute_source_predictions(
            lambda x: backbone(to_input(x)), batches, modules=(backbone, prompt), device=device
        )
        freq = frequency_from_predictions(predictions, labels, self.num_source, self.num_target)
        return greedy_label_map(freq)

    def _needs_inputs(self, backbone: Any, prompt: Any, batches: Any, when: str) -> None:
        if self.policy.reads_training_set and (backbone is None or prompt is None or batches is None):
            raise ReprolibError(f"label map {self.kind!r} needs the backbone, the prompt and training batches{when}")

    def initial(self, backbone: nn.Module | None, prompt: nn.Module | None, batches: Batches | None,
                device: torch.device | str | None = None) -> Tensor:
        """The map before training (a policy that reads no images needs no backbone, prompt or batches)."""
        self._needs_inputs(backbone, prompt, batches, "")
        self.label_map = self.policy.make_map(self, backbone, prompt, batches, device)
        self._epoch0_ready = True
        return self.label_map

    def before_epoch(self, epoch: int, backbone: nn.Module | None = None, prompt: nn.Module | None = None,
                     batches: Batches | None = None, device: torch.device | str | None = None) -> Tensor:
        """The map for this epoch: a recomputing policy recomputes (except epoch 0 right after `initial`)."""
        if self.label_map is None:
            return self.initial(backbone, prompt, batches, device=device)
        if self.policy.recomputes and not (epoch == 0 and self._epoch0_ready):
            self._needs_inputs(backbone, prompt, batches, " every epoch")
            self.label_map = self.policy.make_map(self, backbone, prompt, batches, device)
        self._epoch0_ready = False
        return self.label_map
