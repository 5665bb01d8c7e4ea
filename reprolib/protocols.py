"""Training protocols: named presets of the schedule every transfer method shares (docs/methods.md s.3-5).

A protocol holds the shared schedule of a transfer run (epochs, batches, learning-rate
milestones and decay, seed, evaluation schedule, OOD images, the legacy-ECE batch), so that a
run record can carry the full preset (`Protocol.to_dict()`) and a changed preset can never be
mistaken for an old one. Each method's own numbers (learning rates, SMM's augmentation) live
with the method, in its registry entry (`transfer/registry.py` MethodSpec for LP,
`prompts/kinds.py` PromptKind for the prompts), as `Hyperparameters`: defaults plus the
presets that differ, read through `transfer.registry.method_hparams(spec, protocol)`. The presets:

- `rlt`: the RLT paper (Misra et al.): 100 epochs, MultiStepLR x0.1 at int(0.5E) and
  int(0.72E) stepped per epoch; batch 128 for every dataset (one `--batch_size` feeds all of
  RLT's loaders; docs/methods.md s.4). Its methods: Adam lr 0.01 on the prompt and on LP's head.
- `ilm`: ILM-VP (Chen et al.): as `rlt` but 200 epochs, seed 7, and batch 64 on the sets
  whose `DatasetInfo.small_batch` is set (DTD, OxfordPets: ILM's CoOp loaders); LP lr 0.1.
- `smm`: SMM (Cai et al.): 200 epochs, batch 256 for every dataset. Its prompts: delta lr 0.01
  and mask-generator lr 0.01 with the same decay (ResNets), for ViT the generator at lr 0.001
  without decay; train augmentation on (resize + random crop, flips on every dataset, SVHN and
  GTSRB included, as the public code: `flip="always"`). Decision (docs/methods.md s.5): SMM's
  released script covers only CIFAR-10/100, GTSRB and SVHN at 256; the 64 on DTD/OxfordPets is
  ILM's and nobody confirmed it for SMM, so `smm` keeps 256 everywhere.
- `embedded`: the CPU study on the 28 px embedded backbone. Fewer epochs (and, in the prompt
  kinds' entries, a larger prompt learning rate than `rlt`), tuned so a full-data VP run on
  `digits` takes seconds and lands far above chance (docs/departures.md: how it compares with
  longer training).
- `imagenet_lite`: the imagenet-lite study (EfficientNet-Lite0, 64 px inputs, 16 px targets):
  few-shot runs on 2 CPU cores; 5 epochs, the test set evaluated once after the last
  (eval_fraction 1.0: a whole-test-set pass per epoch would cost more than a few-shot run's
  training), 100 OOD images per source; its prompts: lr 0.05 (the issue's digits prototype:
  10 epochs at 0.05 took full-data VP-ILM to 78.6%), no augmentation (SMM's crops would cost a
  second copy of every image at 64 + margin px).
- `smoke_lite`: one epoch and 32 OOD images per source, for the smoke-lite profile (nbval on
  EfficientNet-Lite0 within about a minute).
- `smoke`: two epochs, for tests and CI; numbers are meaningless, the code path is the point.

The legacy RLT "ECE" (docs/methods.md s.9) depends on the test batch it is computed with, so
every preset names the batch RLT logged with: `legacy_ece_batch` (128), except for the
(method, target) pairs in `legacy_ece_exceptions` (VP on OxfordPets: 64, RLT's VP loader),
collected from the datasets' entries (`DatasetInfo.legacy_ece_batches`).
`legacy_batch_for(method, target)` is the one place that reads them.

Evaluation schedule (issue 13): the test set (and the validation split, when a run selects on
it) is evaluated after every `eval_fraction` of the run (default a tenth: every 10th epoch
of 100) and always after the last epoch, whose state is reported (`eval_epochs`). The
8-epoch `embedded` preset sets a quarter (epochs 2, 4, 6, 8): a tenth of 8 epochs is every
epoch, and a 5-shot run's eight test passes (960 glyphs images each) were 70% of its time.
The public loops evaluate every epoch; the final metrics do not depend on it, only the
curves' x-axis and, for `select_best_on_val`, which epochs can be selected. `eval_fraction`
is part of the preset, so it is stored in (and hashed into) every record: a record says how
its curves were made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reprolib.data.catalog import info
from reprolib.data.catalog import names as names_of_datasets
from reprolib.errors import ReprolibError, check_choice

# RLT's test loaders: batch 128, except where a dataset's entry says otherwise
# (`DatasetInfo.legacy_ece_batches`: VP on OxfordPets, 64); (method, target, batch) rows.
RLT_LEGACY_ECE_EXCEPTIONS: tuple[tuple[str, str, int], ...] = tuple(
    (method, target, batch) for target in names_of_datasets() for method, batch in info(target).legacy_ece_batches)


@dataclass(frozen=True)
class Protocol:
    """The schedule every method of one preset shares (each method's own numbers: its entry's
    `Hyperparameters`)."""

    name: str
    epochs: int
    batch_size: int                      # training batch for every method
    small_batch: int                     # batch for targets whose DatasetInfo.small_batch is set
    milestones: tuple[float, ...] = (0.5, 0.72)   # fractions of E; MultiStepLR at int(f * E)
    gamma: float = 0.1
    test_batch_size: int = 256           # evaluation batch (hashed: a CNN's logits at 224 px move with it)
    seed: int = 4                        # the paper's default seed (RLT 4, ILM 7)
    legacy_ece_batch: int = 128          # test batch of the legacy RLT "ECE" (RLT's test loaders)
    legacy_ece_exceptions: tuple[tuple[str, str, int], ...] = RLT_LEGACY_ECE_EXCEPTIONS
    ood_per_set: int = 300               # OOD images scored per source (noise, each partner set)
    eval_fraction: float = 0.1           # test (and val) evaluated every this fraction of the run, and last

    def batch_size_for(self, target: str) -> int:
        """The training batch the preset uses for `target` (small_batch where DatasetInfo.small_batch)."""
        return self.small_batch if info(target).small_batch else self.batch_size

    def legacy_batch_for(self, method: str, target: str) -> int:
        """The test batch RLT logged its "ECE" with for `method` on `target` (docs/methods.md s.9)."""
        for m, t, batch in self.legacy_ece_exceptions:
            if (m, t) == (method, target):
                return batch
        return self.legacy_ece_batch

    def milestone_epochs(self, epochs: int) -> list[int]:
        """Epoch indices at which the learning rate drops, int(f * E) as in the public code."""
        return [int(f * epochs) for f in self.milestones]

    def eval_epochs(self, epochs: int) -> list[int]:
        """1-based epochs after which test (and validation) are evaluated: every
        max(1, round(eval_fraction * E)) epochs, and always the last one (the reported state)."""
        return eval_schedule(self.eval_fraction, epochs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["legacy_ece_exceptions"] = [list(row) for row in self.legacy_ece_exceptions]
        return d


def eval_schedule(fraction: float, epochs: int) -> list[int]:
    """Every max(1, round(fraction * epochs)) epochs (1-based), plus the last epoch."""
    every = max(1, round(fraction * epochs))
    return sorted(set(range(every, epochs + 1, every)) | {epochs})


PRESETS: dict[str, Protocol] = {
    # RLT: one --batch_size (128) for every loader, so small_batch = batch_size.
    "rlt": Protocol(name="rlt", epochs=100, batch_size=128, small_batch=128, seed=4),
    "ilm": Protocol(name="ilm", epochs=200, batch_size=128, small_batch=64, seed=7),
    # SMM: 256 everywhere (64 on DTD/Pets is ILM's, unconfirmed for SMM).
    "smm": Protocol(name="smm", epochs=200, batch_size=256, small_batch=256, seed=7),
    # Tuned on digits with the embedded upstream model (docs/methods.md s.4, docs/departures.md).
    "embedded": Protocol(name="embedded", epochs=8, batch_size=64, small_batch=64, test_batch_size=256, seed=1,
                         eval_fraction=0.25),
    "smoke": Protocol(name="smoke", epochs=2, batch_size=64, small_batch=64, test_batch_size=256, seed=1),
    # The paper dry run: RLT's recipe (RLT's batches and seed) for one epoch on the synthetic
    # sets, with few OOD images: the paper code path in CI minutes at 224 px.
    "dryrun": Protocol(name="dryrun", epochs=1, batch_size=32, small_batch=32, test_batch_size=64, seed=4,
                       ood_per_set=16),
    # The imagenet-lite study (EfficientNet-Lite0 at 64 px): see the module docstring.
    "imagenet_lite": Protocol(name="imagenet_lite", epochs=5, batch_size=64, small_batch=64, test_batch_size=256,
                              seed=1, ood_per_set=100, eval_fraction=1.0),
    # smoke-lite: the imagenet-lite code path under nbval; one epoch, few OOD images.
    "smoke_lite": Protocol(name="smoke_lite", epochs=1, batch_size=64, small_batch=64, test_batch_size=256,
                           seed=1, ood_per_set=32),
}


@dataclass(frozen=True)
class Hyperparameters:
    """A method's own numbers, kept in its registry entry: `defaults` for every preset and, for
    the presets that differ, their values (`presets`: {preset name: {name: value}}). A new
    method adds its numbers here, in its own entry; no preset and no other method changes."""

    defaults: Mapping[str, Any]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for preset, values in self.presets.items():
            check_choice("protocol preset", preset, PRESETS)
            for key in values:
                check_choice(f"{preset} hyperparameter", key, tuple(self.defaults))

    def names(self) -> tuple[str, ...]:
        return tuple(self.defaults)

    def for_protocol(self, protocol: Protocol) -> dict[str, Any]:
        """{name: value} under `protocol` (its preset's values where they differ, else the defaults)."""
        return {**self.defaults, **self.presets.get(protocol.name, {})}

    def __add__(self, other: Hyperparameters) -> Hyperparameters:
        """Both sets of numbers (a prompt's learning rate plus its augmentation, say); names must differ."""
        shared = set(self.defaults) & set(other.defaults)
        if shared:
            raise ReprolibError(f"hyperparameters {sorted(shared)} are defined twice; valid: distinct names")
        presets = {name: {**self.presets.get(name, {}), **other.presets.get(name, {})}
                   for name in (*self.presets, *(p for p in other.presets if p not in self.presets))}
        return Hyperparameters({**self.defaults, **other.defaults}, presets)


def names() -> list[str]:
    return list(PRESETS)


def get_protocol(name: str, **overrides: Any) -> Protocol:
    """The named preset, optionally with fields replaced (e.g. epochs=3); unknown -> error."""
    check_choice("protocol", name, PRESETS)
    if not overrides:
        return PRESETS[name]
    fields = [f.name for f in dataclasses.fields(Protocol)]
    for key in overrides:
        check_choice("protocol field", key, fields)
    protocol = dataclasses.replace(PRESETS[name], **overrides)
    if min(protocol.epochs, protocol.batch_size, protocol.small_batch, protocol.legacy_ece_batch) < 1:
        raise ReprolibError(f"protocol epochs and batch sizes must be >= 1, got {protocol}")
    if not 0 < protocol.eval_fraction <= 1:
        raise ReprolibError(f"protocol eval_fraction must be in (0, 1], got {protocol.eval_fraction!r}")
    return protocol
