"""Effects measured on the ledger, with their intervals, and the null ledger that tests them.

An effect is a number computed from cells of runs (a cell: one target, arm, network, shots
regime); `effect_interval` computes it once per seed and takes the t interval over the seeds
that every cell has (>= 2, and not all equal: seeds that agree exactly show no noise), else
bootstraps each run's test images (reprolib.stats; centred on the recorded value) and takes
the percentile interval. `cell_difference` is the paired comparison of two cells
(dense minus ticket): the per-seed paired differences, else the two runs' image bootstraps.

`null_ledger` makes the ledger of "the network does not matter": within each paired cell
(one target, arm, n-shot and seed, which share the few-shot draw) the transfer results of the
dense model and its IMP tickets are permuted at random among them (with two networks: a
random swap of dense and sparse). Claims tested on it must say "holds" rarely
(claims.null_holds_rate). docs/methods.md s.12.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from reprolib.stats import (CONFIDENCE, IMAGE_BOOTSTRAP, N_BOOT, SEEDS_AGREE, SEEDS_NOT_SHARED, Interval, all_equal,
                            bins_metric, bootstrap_interval, image_replicates, p_above, paired_effect, run_rng,
                            t_interval)

Effect = Callable[[pd.DataFrame], pd.Series]   # cells x samples (seeds or replicates) -> one value per sample
PAIRED_CELL = ["target", "arm", "n_shot", "seed"]
# What moves with a run in the null ledger: its results (and its id, which seeds its bootstrap).
RESULT_COLUMNS = ["id", "accuracy", "ece", "mce", "nll", "brier", "legacy_rlt_ece", "reliability"]


def seed_table(rows: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Cells (index `keys`) x seeds: the mean of `metric` over the cell's runs of that seed."""
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys))
    return rows.groupby([*keys, "seed"])[metric].mean().unstack("seed")


@lru_cache(maxsize=512)
def _deviations(run_id: str, bins_json: str, metric: str, n_boot: int) -> np.ndarray:
    bins = json.loads(bins_json)
    return image_replicates(bins, metric, n_boot, run_rng(run_id)) - bins_metric(bins, metric)


def run_replicates(row: pd.Series, metric: str, n_boot: int = N_BOOT) -> np.ndarray:
    """One run's image-bootstrap replicates of `metric`: the recorded value plus the bootstrap's
    deviations (NaN when its record has no reliability bins)."""
    bins = row.get("reliability")
    if not isinstance(bins, str) or not bins:
        return np.full(n_boot, np.nan)
    return float(row[metric]) + _deviations(str(row["id"]), bins, metric, n_boot)


def replicate_table(rows: pd.DataFrame, keys: list[str], metric: str, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Cells (index `keys`) x replicates: the mean over the cell's runs of their image bootstraps."""
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys))
    reps = np.stack([run_replicates(row, metric, n_boot) for _, row in rows.iterrows()])
    frame = pd.DataFrame(reps, index=pd.MultiIndex.from_frame(rows[keys]))
    return frame.groupby(level=list(range(len(keys)))).mean()


def effect_interval(rows: pd.DataFrame, keys: list[str], metric: str, effect: Effect,
                    table: pd.DataFrame | None = None) -> tuple[Interval, np.ndarray | None, np.ndarray | None]:
    """The 95% interval of `effect` over `rows`, with the per-seed values (t path) or the
    bootstrap replicates (image path) it came from. t over the seeds every cell has when there
    are >= 2 of them; else the image bootstrap of each run (cell = mean of its runs).
    `table`: seed_table(rows, keys, metric) when the caller has it already."""
    confidence = CONFIDENCE
    table = seed_table(rows, keys, metric) if table is None else table
    complete = table.dropna(axis=1)
    if complete.shape[1] >= 2:
        values = np.asarray(effect(complete), dtype=float)
        if not all_equal(values):   # seeds that agree exactly show no noise: the images' noise is the interval
            return t_interval(values, confidence), values, None
    point = float(np.asarray(effect(table.mean(axis=1).to_frame()), dtype=float)[0]) if len(table) else np.nan
    reps = np.asarray(effect(replicate_table(rows, keys, metric)), dtype=float) if len(table) else np.array([])
    method = _bootstrap_name(complete.shape[1], table.shape[1])
    return bootstrap_interval(point, reps, confidence, max(complete.shape[1], 1), method), None, reps


def _bootstrap_name(shared: int, seeds: int) -> str:
    """Why an interval is an image bootstrap: seeds that agree, one seed, or seeds not shared."""
    return SEEDS_AGREE if shared >= 2 else IMAGE_BOOTSTRAP if seeds <= 1 else SEEDS_NOT_SHARED


def cell_difference(first: pd.DataFrame, second: pd.DataFrame, metric: str, margin: float,
                    confidence: float = CONFIDENCE) -> tuple[Interval, float]:
    """`first` - `second` in percent of `metric` with its interval, and the one-sided p-value
    that it exceeds `margin`: paired over their common seeds (>= 2), else the difference of the
    two cells' image bootstraps (unpaired: per-image results are not stored, so the interval
    is wider than a paired one would be)."""
    a, b = first.groupby("seed")[metric].mean() * 100, second.groupby("seed")[metric].mean() * 100
    common = a.index.intersection(b.index)
    if len(common) >= 2 and not all_equal(a[common] - b[common]):
        values = (a[common] - b[common]).to_numpy()
        return paired_effect(a, b, confidence), p_above(margin, values=values)
    reps = [replicate_table(frame.assign(cell=0), ["cell"], metric).mean(axis=0).to_numpy() * 100
            for frame in (first, second)]
    diff = reps[0] - reps[1]
    method = _bootstrap_name(len(common), max(len(a), len(b)))
    return (bootstrap_interval(float(a.mean() - b.mean()), diff, confidence, max(len(common), 1), method),
            p_above(margin, replicates=diff))


def null_ledger(ledger: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The ledger with the results of the dense model and its IMP tickets permuted at random
    within each paired cell (target, arm, n-shot, seed); every other run unchanged."""
    imp = ledger.index[ledger["ticket_kind"] == "imp"]
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
