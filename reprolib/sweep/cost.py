"""Size before you spend: what a sweep's grid costs in images and GPU-hours (`sweep --dry-run`).

Per run, the images the backbone forwards, counted as the code path does today:
- prompt methods (VP, SMM, watermarks): train images x epochs forward+backward (the gradient
  flows through the frozen backbone to the prompt); forward only: the test set once per epoch
  (the loop evaluates every epoch), the label-mapping passes over the training images (ILM
  every epoch, FLM once, RLM none), and OOD scoring;
- LP: one feature pass (forward) over train + test, then only the head (free at this scale),
  and OOD scoring (forward).
OOD scoring forwards `Protocol.ood_per_set` noise images plus up to that many test images of each
partner set (reprolib.transfer.ood_eval).

A method's own modules add their share: SMM's mask generator runs on every image the backbone
sees, so a run's forward (forward+backward) images count 1 + its share of the backbone's
multiply-accumulates per image, from the layer sizes (MethodSpec.own_work,
reprolib.models.flops; about 1.3% forward and 1.7% forward+backward for SMM on a ResNet-50
at 224 px). Prompts without layers (padding, watermarks) and LP's head add nothing.

GPU-hours = forward work / forward rate + forward+backward work / forward+backward rate, at
the rates the user passes, else the latest rates measured for the profile's backbone on its
kind of device in `bench/rates.csv` (`make gpu-check` on a GPU, `make bench` on this machine:
the file names the device, the date and the precision; the dry run prints them), else stated
assumptions (1,000 images/s forward+backward, 3,000 forward: a guess at ResNet-50 on one H100).

Two plans are priced (issue 13): `BEFORE`, the code path above (test every epoch, LP features
per run, one run at a time), and `AFTER`: test passes only at `Protocol.eval_epochs` (by default a tenth
of the run and the last epoch), LP features computed once per (network, target) and shared
(the test and full training split once; each few-shot subset once), and prompt runs grouped
`GROUP_RUNS` at a time. Grouping forwards the same images, so it only shows in the padded
figures: a training step of fewer than `SATURATION_BATCH` images is priced as a full one
(ASSUMED: below that batch a GPU is latency-bound, stated as an assumption); in a group of g
runs each run bears 1/g of that floor. Padded fwd+bwd per run and epoch = the sum over its
steps of max(step images, SATURATION_BATCH / g).

Few-shot cells whose n_shot exceeds the smallest class of the target's training split are
flagged: those runs keep the whole class (capped), so they cost less than n_shot x K.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reprolib.data.catalog import SplitSizes, info
from reprolib.transfer import registry as method_registry
from reprolib.protocols import get_protocol
from reprolib.sweep.rates import ASSUMED_FWD, ASSUMED_FWDBWD, Throughput, parse_rate, throughput  # noqa: F401

SATURATION_BATCH = 128   # ASSUMED: a GPU step under this many images costs as much as this many (RLT's batch)
GROUP_RUNS = 16          # prompt runs per group in the AFTER plan (reprolib.transfer.grouped.MAX_RUNS)


@dataclass(frozen=True)
class Plan:
    """How a grid is run, for pricing: the evaluation schedule, LP feature sharing, group size."""

    name: str
    scheduled_eval: bool
    shared_lp_features: bool
    group_runs: int


BEFORE = Plan("before: test every epoch, LP features per run, one run at a time", False, False, 1)
AFTER = Plan(f"after: test on the protocol's schedule (eval_fraction), shared LP features, groups of {GROUP_RUNS}", True, True,
             GROUP_RUNS)


def split_sizes(name: str, profile: Any = None) -> SplitSizes:
    """A paper set's published sizes (DatasetInfo.sizes); an embedded set's counts read from its data."""
    if info(name).sizes is not None:
        return info(name).sizes
    from reprolib.data import get_dataset   # embedded sets are small and on disk

    root = profile.path("data_root") if profile is not None else None
    train, test = get_dataset(name, "train", root=root), get_dataset(name, "test", root=root)
    counts = train.labels.bincount()
    return SplitSizes(len(train), len(test), int(counts[counts > 0].min()))


def few_shot_train(sizes: SplitSizes, num_classes: int, n_shot: int) -> int:
    """Training images of an n-shot run (-1: all); a capped class gives all it has."""
    if n_shot == -1:
        return sizes.train
    return min(n_shot * num_classes, sizes.train)


def is_capped(sizes: SplitSizes, n_shot: int) -> bool:
    return n_shot != -1 and n_shot > sizes.min_per_class


@dataclass(frozen=True)
class RunCost:
    """Images one run forwards (forward only) and forwards+backwards, and the work of the method's
    own modules on them in backbone-image equivalents (module docstring)."""

    fwd: int
    fwdbwd: int
    own_fwd: float = 0.0
    own_fwdbwd: float = 0.0


@functools.lru_cache(maxsize=None)
def own_share(method: str, backbone: str | None, target: str) -> tuple[float, float]:
    """The method's own modules' (forward, forward+backward) work per image as fractions of
    `backbone`'s (0, 0 without a backbone name)."""
    if backbone is None:
        return 0.0, 0.0
    from reprolib.models.flops import meta_backbone

    return method_registry.get(method).own_work(meta_backbone(backbone), info(target))


def with_own_work(cost: RunCost, share: tuple[float, float]) -> RunCost:
    """`cost` plus its method's own modules' work on the same images."""
    return RunCost(cost.fwd, cost.fwdbwd, cost.fwd * share[0], cost.fwdbwd * share[1])


def run_cost(method: str, label_map: str | None, n_train: int, n_test: int, epochs: int, n_ood: int,
             eval_passes: int | None = None) -> RunCost:
    """The images one run passes through the backbone (module docstring); `eval_passes` test
    passes (None: one per epoch).

    Many parameters because each is one independent count of the formula.
    """
    fwd, fwdbwd = method_registry.get(method).cost(label_map, n_train, n_test, epochs, n_ood, eval_passes)
    return RunCost(fwd=fwd, fwdbwd=fwdbwd)


def padded_fwdbwd(n_train: int, batch: int, epochs: int, group_runs: int) -> float:
    """Training images priced with the small-step floor (module docstring)."""
    floor = SATURATION_BATCH / group_runs
    full, rest = divmod(n_train, batch)
    return epochs * (full * max(batch, floor) + (max(rest, floor) if rest else 0))


def ood_count(target: str, profile: Any, sizes_of) -> int:
    """OOD images a run scores: noise plus up to `ood_per_set` test images of each partner set."""
    per_set = get_protocol(profile.protocol).ood_per_set
    partners = info(target).ood_partners if info(target).kind == "embedded" else profile.targets
    return per_set + sum(min(per_set, sizes_of(p).test) for p in partners if p != target)


@dataclass
class GridCost:
    """The summed cost of a grid, split into full-data and few-shot runs, and the capped cells."""

    runs: int = 0
    fwd: int = 0
    fwdbwd: int = 0
    full_data_fwd: int = 0
    full_data_fwdbwd: int = 0
    fwdbwd_padded: float = 0.0
    capped: dict[tuple[str, int], tuple[str, int]] | None = None   # (target, n_shot) -> (smallest class, runs)
    own_fwd: float = 0.0              # the methods' own modules, in backbone-image equivalents
    own_fwdbwd: float = 0.0
    full_data_own_fwd: float = 0.0
    full_data_own_fwdbwd: float = 0.0

    def add(self, cost: RunCost, full_data: bool) -> None:
        """One run's counts added to the totals (and to the full-data ones for a full-data run)."""
        self.runs += 1
        self.fwd, self.fwdbwd = self.fwd + cost.fwd, self.fwdbwd + cost.fwdbwd
        self.own_fwd, self.own_fwdbwd = self.own_fwd + cost.own_fwd, self.own_fwdbwd + cost.own_fwdbwd
        if full_data:
            self.full_data_fwd, self.full_data_fwdbwd = self.full_data_fwd + cost.fwd, self.full_data_fwdbwd + cost.fwdbwd
            self.full_data_own_fwd += cost.own_fwd
            self.full_data_own_fwdbwd += cost.own_fwdbwd

    def hours(self, rate: Throughput, full_data_only: bool = False, padded: bool = False) -> float:
        if full_data_only:
            fwd, fwdbwd = self.full_data_fwd + self.full_data_own_fwd, self.full_data_fwdbwd + self.full_data_own_fwdbwd
        else:
            fwd, fwdbwd = self.fwd + self.own_fwd, self.fwdbwd + self.own_fwdbwd
        fwdbwd = self.fwdbwd_padded if padded else fwdbwd
        return (fwd / rate.fwd + fwdbwd / rate.fwdbwd) / 3600.0


def grid_cost(configs: Iterable[Any], profile: Any, epochs: int, plan: Plan = BEFORE) -> GridCost:
    """Sum run_cost over the grid's TransferConfigs (at `epochs`, the protocol's) under `plan`
    and flag capped cells.

    Long because it is one loop that adds each run's counts to every total.
    """
    cache: dict[str, SplitSizes] = {}

    def sizes_of(name: str) -> SplitSizes:
        if name not in cache:
            cache[name] = split_sizes(name, profile)
        return cache[name]

    protocol, seen_features = get_protocol(profile.protocol), set()
    total = GridCost(capped={})
    for config in configs:
        sizes, run_epochs = sizes_of(config.target), config.epochs or epochs
        n_train = few_shot_train(sizes, info(config.target).num_classes, config.n_shot)
        passes = len(protocol.eval_epochs(run_epochs)) if plan.scheduled_eval else None
        cost = run_cost(config.method, config.label_map, n_train, sizes.test, run_epochs,
                        ood_count(config.target, profile, sizes_of), passes)
        if plan.shared_lp_features and method_registry.get(config.method).shared_features:
            cost = _shared_lp_cost(config, n_train, cost, seen_features)
        share = own_share(config.method, getattr(profile, "backbone", None), config.target)
        cost = with_own_work(cost, share)
        batch = protocol.batch_size_for(config.target)
        total.add(cost, full_data=config.n_shot == -1)
        if cost.fwdbwd:
            total.fwdbwd_padded += padded_fwdbwd(n_train, batch, run_epochs, plan.group_runs) * (1 + share[1])
        if is_capped(sizes, config.n_shot):
            smallest = f"at most {sizes.min_per_class}" if sizes.bound else str(sizes.min_per_class)
            runs = total.capped.get((config.target, config.n_shot), ("", 0))[1] + 1
            total.capped[(config.target, config.n_shot)] = (smallest, runs)
    return total


class RunTimer:
    """Estimated seconds of single runs at a throughput (for the schedulers: reprolib.sweep.scheduling
    hands out the longest first, reprolib.sweep.slurm packs jobs under their time limit).

    A run is priced on its own: scheduled test passes, its own LP feature pass (no sharing: a
    bound, never an underestimate, whatever run shares its features), and the small-step floor
    of a group of `group_runs` (1: a run alone).
    """

    def __init__(self, profile: Any, rate: Throughput):
        self.profile, self.rate, self.protocol = profile, rate, get_protocol(profile.protocol)
        self.sizes: dict[str, SplitSizes] = {}

    def sizes_of(self, name: str) -> SplitSizes:
        if name not in self.sizes:
            self.sizes[name] = split_sizes(name, self.profile)
        return self.sizes[name]

    def seconds(self, config: Any, group_runs: int = 1) -> float:
        sizes, epochs = self.sizes_of(config.target), config.epochs or self.protocol.epochs
        n_train = few_shot_train(sizes, info(config.target).num_classes, config.n_shot)
        passes = len(self.protocol.eval_epochs(epochs))
        cost = run_cost(config.method, config.label_map, n_train, sizes.test, epochs,
                        ood_count(config.target, self.profile, self.sizes_of), passes)
        share = own_share(config.method, self.profile.backbone, config.target)
        fwdbwd = padded_fwdbwd(n_train, self.protocol.batch_size_for(config.target), epochs, group_runs) \
            if cost.fwdbwd else 0.0
        return cost.fwd * (1 + share[0]) / self.rate.fwd + fwdbwd * (1 + share[1]) / self.rate.fwdbwd


def _shared_lp_cost(config: Any, n_train: int, cost: RunCost, seen: set) -> RunCost:
    """An LP run's forwards when features are shared: the test split and OOD images once per
    network and target, the full training split once, each few-shot subset once."""
    network = (config.target, getattr(config, "network", None), getattr(config, "kind", None),
               getattr(config, "level", None), getattr(config, "replicate", 1))
    shared = cost.fwd - n_train if network not in seen else 0   # test + OOD
    seen.add(network)
    subset = (network, config.n_shot, getattr(config, "seed", None) if config.n_shot != -1 else None)
    train = n_train if subset not in seen else 0
    seen.add(subset)
    return RunCost(fwd=shared + train, fwdbwd=0)


def describe(cost: GridCost, rate: Throughput) -> list[str]:
    """The lines `sweep --dry-run` prints under the grid."""
    hours, full = cost.hours(rate), cost.hours(rate, full_data_only=True)
    lines = [f"cost: {cost.runs} runs; {cost.fwdbwd:,} images forward+backward, {cost.fwd:,} forward only"]
    if cost.own_fwd or cost.own_fwdbwd:
        own = (cost.own_fwd / rate.fwd + cost.own_fwdbwd / rate.fwdbwd) / 3600.0
        lines.append(f"the methods' own modules (e.g. SMM's mask generator), from their layer sizes: as many "
                     f"multiply-accumulates as {cost.own_fwdbwd:,.0f} backbone images forward+backward and "
                     f"{cost.own_fwd:,.0f} forward, {own:,.1f} GPU-hours ({100 * own / max(hours, 1e-12):.1f}%)")
    lines += [f"throughput: {rate.fwdbwd:,.0f} img/s fwd+bwd, {rate.fwd:,.0f} img/s fwd ({rate.source})",
             f"GPU-hours: {hours:,.1f} in all; full-data runs {full:,.1f} ({_share(full, hours)}), "
             f"few-shot runs {hours - full:,.1f}"]
    for (target, n_shot), (smallest, runs) in sorted((cost.capped or {}).items()):
        lines.append(f"capped: {target} {n_shot}-shot ({runs} runs): smallest training class has {smallest} "
                     "images (those runs keep the whole class)")
    return lines


def describe_plans(configs: list[Any], profile: Any, epochs: int, rate: Throughput) -> list[str]:
    """The before / after lines of `sweep --dry-run` (module docstring: the two plans)."""
    before, after = (grid_cost(configs, profile, epochs, plan) for plan in (BEFORE, AFTER))
    lines = []
    for plan, total in ((BEFORE, before), (AFTER, after)):
        lines.append(f"{plan.name}: {total.hours(rate):,.1f} GPU-hours ({total.fwd:,} forward, "
                     f"{total.fwdbwd:,} forward+backward); with the small-step floor (ASSUMED "
                     f"{SATURATION_BATCH}-image steps) {total.hours(rate, padded=True):,.1f}")
    ratio = before.hours(rate, padded=True) / max(after.hours(rate, padded=True), 1e-12)
    lines.append(f"after / before: {1 / ratio:.2f} of the GPU-hours with the floor "
                 f"({after.hours(rate) / max(before.hours(rate), 1e-12):.2f} without)")
    return lines


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"
