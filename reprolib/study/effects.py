"""Effects measured on the ledger, with their intervals, and the null ledger that tests them.

An effect is a number computed from cells of runs (a cell: one target, arm, network, shots
regime; `Cells` holds them); `effect_interval` computes it once per seed and takes the t
interval over the seeds that have every cell it reads (>= 2, and not all equal: seeds that
agree exactly show no noise), else bootstraps each run's test images (reprolib.study.stats;
centred on the recorded value) and takes the percentile interval. `cell_difference` is the paired comparison of two cells
(dense minus ticket): the per-seed paired differences, else the two runs' image bootstraps.

`null_ledger` makes the ledger of "the network does not matter": within each paired cell
(one target, arm, n-shot and seed, which share the few-shot draw) the transfer results of the
dense model and its sparse networks are permuted at random among them (with two networks: a
random swap of dense and sparse). Claims tested on it must say "holds" rarely
(claims.null_holds_rate). docs/methods.md s.12.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from reprolib.scores.registry import names as metric_names
from reprolib.study.stats import (CONFIDENCE, IMAGE_BOOTSTRAP, N_BOOT, SEEDS_AGREE, SEEDS_NOT_SHARED, Interval, all_equal,
                            bins_metric, bootstrap_interval, image_replicates, n_boot_for, p_above, paired_effect,
                            run_rng, t_interval)

CellValues = dict[tuple, np.ndarray]           # cell key -> its values per sample (seeds or bootstrap replicates)
Effect = Callable[[CellValues], np.ndarray]     # -> the effect per sample
PAIRED_CELL = ["target", "arm", "n_shot", "seed"]
# What moves with a run in the null ledger: its results (and its id, which seeds its bootstrap).
# The metrics: the registered ledger columns (reprolib.scores.registry).
RESULT_COLUMNS = ["id", *metric_names(place="ledger"), "reliability"]


def seed_table(rows: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Cells (index `keys`) x seeds: the mean of `metric` over the cell's runs of that seed."""
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys))
    return rows.groupby([*keys, "seed"])[metric].mean().unstack("seed")


@lru_cache(maxsize=1024)
def _deviations(run_id: str, bins_json: str, metric: str, n_boot: int) -> np.ndarray:
    bins = json.loads(bins_json)
    return image_replicates(bins, metric, n_boot, run_rng(run_id)) - bins_metric(bins, metric)


def replicate_values(rows: pd.DataFrame, keys: list[str], metric: str, n_boot: int = N_BOOT) -> CellValues:
    """{cell key: the mean over the cell's runs of their image-bootstrap replicates}, each run's
    replicates centred on its recorded value (NaN for a run whose record has no reliability bins)."""
    runs: dict[tuple, list[np.ndarray]] = {}
    for key, run_id, bins, value in zip(rows[keys].itertuples(index=False, name=None), rows["id"],
                                        rows["reliability"], rows[metric]):
        reps = (float(value) + _deviations(str(run_id), bins, metric, n_boot) if isinstance(bins, str) and bins
                else np.full(n_boot, np.nan))
        runs.setdefault(key, []).append(reps)
    return {key: np.mean(values, axis=0) for key, values in runs.items()}


@dataclass
class Cells:
    """The runs behind an effect, grouped into cells (`keys`), with their seed table and (made
    when first needed) their image-bootstrap table, so several effects share both."""

    rows: pd.DataFrame
    keys: list[str]
    metric: str

    @cached_property
    def seeds(self) -> pd.DataFrame:
        return seed_table(self.rows, self.keys, self.metric)

    @cached_property
    def replicates(self) -> CellValues:   # the image-bootstrap values, made on first use
        return replicate_values(self.rows, self.keys, self.metric)


def cell_values(table: pd.DataFrame) -> CellValues:
    """A cells x samples table as {cell key (a tuple): its row}: effects read plain arrays."""
    keys = [key if isinstance(key, tuple) else (key,) for key in table.index]
    return dict(zip(keys, table.to_numpy(dtype=float)))


def effect_interval(cells: Cells, effect: Effect) -> Interval:
    """The 95% interval of `effect` over `cells`: t over the seeds that have every cell the
    effect reads (the effect is NaN for the others) when there are >= 2 of them and they do not
    all agree; else the image bootstrap of each run (a cell = the mean of its runs' seeds),
    named by why (stats.IMAGE_BOOTSTRAP, SEEDS_AGREE, SEEDS_NOT_SHARED)."""
    table = cells.seeds
    if not len(table):
        return t_interval([])
    per_seed = np.asarray(effect(cell_values(table)), dtype=float)
    values = per_seed[~np.isnan(per_seed)]
    if len(values) >= 2 and not all_equal(values):   # seeds that agree exactly show no noise
        return t_interval(values)
    point = float(np.asarray(effect(cell_values(table.mean(axis=1).to_frame())), dtype=float)[0])
    reps = np.asarray(effect(cells.replicates), dtype=float)
    return bootstrap_interval(point, reps, CONFIDENCE, max(len(values), 1),
                              _bootstrap_name(len(values), table.shape[1]))


def _bootstrap_name(shared: int, seeds: int) -> str:
    """Why an interval is an image bootstrap: seeds that agree, one seed, or seeds not shared."""
    return SEEDS_AGREE if shared >= 2 else IMAGE_BOOTSTRAP if seeds <= 1 else SEEDS_NOT_SHARED


def cell_difference(first: pd.DataFrame, second: pd.DataFrame, metric: str, margin: float,
                    confidence: float = CONFIDENCE) -> tuple[Interval, float]:
    """`first` - `second` in percent of `metric` with its interval, and the one-sided p-value
    that it exceeds `margin`: paired over their common seeds (>= 2, not all equal), else the
    difference of the two cells' image bootstraps (unpaired: per-image results are not stored,
    so the interval is wider than a paired one would be)."""
    a, b = first.groupby("seed")[metric].mean() * 100, second.groupby("seed")[metric].mean() * 100
    common = a.index.intersection(b.index)
    if len(common) >= 2 and not all_equal(a[common] - b[common]):
        values = (a[common] - b[common]).to_numpy()
        return paired_effect(a, b, confidence), p_above(margin, values=values)
    n_boot = n_boot_for(confidence)
    reps = [replicate_values(frame.assign(cell=0), ["cell"], metric, n_boot)[(0,)] * 100 for frame in (first, second)]
    diff = reps[0] - reps[1]
    method = _bootstrap_name(len(common), max(len(a), len(b)))
    return (bootstrap_interval(float(a.mean() - b.mean()), diff, confidence, max(len(common), 1), method),
            p_above(margin, replicates=diff))


def claim_networks(ledger: pd.DataFrame) -> pd.Series:
    """Rows of the networks the claims compare: the dense model, IMP tickets, imported tickets and
    one-shot magnitude-pruned networks (not the magnitude / random baselines of IMP studies)."""
    mask = ledger["ticket_kind"] == "imp"
    if "provenance" in ledger:
        mask |= ledger["provenance"].eq("imported")
        mask |= ledger["provenance"].eq("oneshot") & ledger["ticket_kind"].eq("magnitude")
    return mask


def null_ledger(ledger: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The ledger with the results of the dense model and its sparse networks (claim_networks)
    permuted at random within each paired cell (target, arm, n-shot, seed); every other run
    unchanged."""
    imp = ledger.index[claim_networks(ledger)]
    group = ledger.loc[imp].groupby(PAIRED_CELL, dropna=False).ngroup().to_numpy()
    by_group = np.argsort(group, kind="stable")
    shuffled = np.lexsort((rng.random(len(group)), group))   # group by group, random order within
    source = np.empty(len(group), dtype=int)
    source[by_group] = shuffled
    out = ledger.copy()
    columns = [c for c in RESULT_COLUMNS if c in ledger]
    positions = ledger.index.get_indexer(imp)
    for column in columns:
        values = ledger[column].to_numpy()
        permuted = out[column].to_numpy().copy()
        permuted[positions] = values[positions[source]]
        out[column] = permuted
    return out
