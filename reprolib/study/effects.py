"""Effects measured on the ledger, with their intervals, and the null draws that test them.

Runs are nested (ticket replicate, seed): a *unit* is one seed of one ticket replicate, and
the dense model and its tickets in one (target, arm, n-shot) cell share a unit's few-shot draw
and initialisation (seeds are distinct across replicates, config.replicate_seed, so every unit
has its own dense run). An effect is a number computed from cells of runs (a cell: one target,
arm, network, shots regime; `Cells` holds them as a cells x units table); `effect_interval`
computes it once per unit and takes the two-level interval over the units
(stats.two_level_interval: cluster-robust over the ticket replicates, so ticket-to-ticket
variation is covered; with one replicate, t over its seeds) when >= 2 units have every cell it
reads and they do not all agree; else it bootstraps each run's test images (centred on the
recorded value) and takes the percentile interval. `cell_difference` is the paired comparison
of two cells (dense minus ticket).

Null draws (reprolib.study.nulls) act on the unit tables: `center_networks` removes each sparse
network's mean difference to dense (the effects become 0, each unit's noise stays),
`flip_networks` gives the paired differences random signs, the replicate's part of each per
replicate and each unit's deviation from it per unit, the same in every cell (so the replicates'
spread, the seeds' spread and the cells' correlation stay as they were), and
`shift_cells` moves chosen cells by a fixed amount (to put an effect exactly at its margin).
docs/methods.md s.12.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from reprolib.study.stats import (CONFIDENCE, IMAGE_BOOTSTRAP, N_BOOT, SEEDS_AGREE, SEEDS_NOT_SHARED, Interval, all_equal,
                                  bins_metric, bootstrap_interval, image_replicates, n_boot_for, p_above, run_rng,
                                  two_level_interval)

CellValues = dict[tuple, np.ndarray]           # cell key -> its values per sample (units or bootstrap replicates)
Effect = Callable[[CellValues], np.ndarray]     # -> the effect per sample
UNIT = ["replicate", "seed"]                    # a unit: one seed of one ticket replicate
NETWORK_KEY = "level"                           # what a null draw permutes within a paired cell


def with_replicate(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with a `replicate` column (1 where the ledger predates ticket replicates)."""
    if "replicate" in rows and rows["replicate"].notna().all():
        return rows
    replicate = rows["replicate"].fillna(1) if "replicate" in rows else 1
    return rows.assign(replicate=replicate)


def seed_table(rows: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Cells (index `keys`) x units (columns (replicate, seed)): the mean of `metric` over the
    cell's runs of that unit."""
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys),
                            columns=pd.MultiIndex.from_tuples([], names=UNIT))
    table = with_replicate(rows).groupby([*keys, *UNIT])[metric].mean().unstack(UNIT)
    return table.reindex(sorted(table.columns), axis=1)


def best_covered(table: pd.DataFrame) -> pd.DataFrame:
    """The cells (rows) of a unit table run on at least half as many ticket replicates as the
    best-covered cell (with one replicate: half as many units): a design runs the claims' cells
    on many (replicate, seed) units (Profile.subgrids) and the rest of its grid on replicate 1's
    few seeds, for its figures; a claim reads the well-covered cells, whose units then share every
    cell. A table whose cells all have about the same units (a failed run or two) is kept whole."""
    if not len(table.columns) or not len(table):
        return table
    present = table.notna().to_numpy()
    replicate = np.asarray(table.columns.get_level_values("replicate"))
    if len(set(replicate)) >= 2:
        coverage = np.array([len(set(replicate[row])) for row in present])
    else:
        coverage = present.sum(axis=1)
    return table[coverage * 2 >= coverage.max()]


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
    """The runs behind an effect, grouped into cells (`keys`), with their unit table and (made
    when first needed) their image-bootstrap table, so several effects share both. A null draw
    replaces the unit table (`with_table`) and keeps the rest."""

    rows: pd.DataFrame
    keys: list[str]
    metric: str
    table: pd.DataFrame | None = None

    @cached_property
    def seeds(self) -> pd.DataFrame:
        """Cells x units (replicate, seed): the well-covered cells (best_covered)."""
        return best_covered(seed_table(self.rows, self.keys, self.metric)) if self.table is None else self.table

    @cached_property
    def replicates(self) -> CellValues:   # the image-bootstrap values, made on first use
        return replicate_values(self.rows, self.keys, self.metric)

    @property
    def clusters(self) -> np.ndarray:
        """The ticket replicate of each unit (column of `seeds`)."""
        columns = self.seeds.columns
        return np.asarray(columns.get_level_values("replicate") if len(columns) else [], dtype=int)

    def with_table(self, table: pd.DataFrame) -> Cells:
        return replace(self, table=table)


def cell_values(table: pd.DataFrame) -> CellValues:
    """A cells x samples table as {cell key (a tuple): its row}: effects read plain arrays."""
    keys = [key if isinstance(key, tuple) else (key,) for key in table.index]
    return dict(zip(keys, table.to_numpy(dtype=float)))


def effect_units(cells: Cells, effect: Effect) -> tuple[np.ndarray, np.ndarray]:
    """(the effect per unit that has every cell it reads, those units' ticket replicates)."""
    if not len(cells.seeds):
        return np.array([]), np.array([], dtype=int)
    per_unit = np.asarray(effect(cell_values(cells.seeds)), dtype=float)
    keep = ~np.isnan(per_unit)
    return per_unit[keep], cells.clusters[keep]


def effect_interval(cells: Cells, effect: Effect, confidence: float = CONFIDENCE) -> Interval:
    """The interval of `effect` over `cells`: two-level over the units that have every cell the
    effect reads (the effect is NaN for the others; stats.two_level_interval) when there are
    >= 2 of them and they do not all agree; else the image bootstrap of each run (a cell = the
    mean of its runs' units), named by why (stats.IMAGE_BOOTSTRAP, SEEDS_AGREE, SEEDS_NOT_SHARED)."""
    return effect_intervals(cells, effect, (confidence,))[0]


def effect_intervals(cells: Cells, effect: Effect, confidences: tuple[float, ...]) -> list[Interval]:
    """effect_interval at each of `confidences`, from one evaluation of the effect (and one fit)."""
    table = cells.seeds
    if not len(table):
        return [two_level_interval([], [], c) for c in confidences]
    values, clusters = effect_units(cells, effect)
    if len(values) >= 2 and not all_equal(values):   # units that agree exactly show no noise
        return two_level_interval(values, clusters, confidences)
    point = float(np.asarray(effect(cell_values(table.mean(axis=1).to_frame())), dtype=float)[0])
    reps = np.asarray(effect(cells.replicates), dtype=float)
    return [bootstrap_interval(point, reps, c, max(len(values), 1), _bootstrap_name(len(values), table.shape[1]))
            for c in confidences]


def _bootstrap_name(shared: int, seeds: int) -> str:
    """Why an interval is an image bootstrap: seeds that agree, one seed, or seeds not shared."""
    return SEEDS_AGREE if shared >= 2 else IMAGE_BOOTSTRAP if seeds <= 1 else SEEDS_NOT_SHARED


def cell_difference(first: pd.DataFrame, second: pd.DataFrame, metric: str, margin: float,
                    confidence: float = CONFIDENCE) -> tuple[Interval, float]:
    """`first` - `second` in percent of `metric` with its interval, and the one-sided p-value
    that it exceeds `margin`: paired over their common units (>= 2, not all equal; two-level),
    else the difference of the two cells' image bootstraps (unpaired: per-image results are not
    stored, so the interval is wider than a paired one would be)."""
    a = with_replicate(first).groupby(UNIT)[metric].mean() * 100
    b = with_replicate(second).groupby(UNIT)[metric].mean() * 100
    common = a.index.intersection(b.index)
    if len(common) >= 2 and not all_equal(a[common] - b[common]):
        values = (a[common] - b[common]).to_numpy()
        clusters = common.get_level_values("replicate").to_numpy()
        return two_level_interval(values, clusters, confidence), p_above(margin, values=values)
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


def _paired_rows(table: pd.DataFrame) -> list[tuple[int, np.ndarray]]:
    """(the dense row, the sparse rows) of each paired cell: rows that differ only in NETWORK_KEY."""
    return _paired_positions(tuple(table.index.names), tuple(table.index))


@lru_cache(maxsize=64)
def _paired_positions(names: tuple, keys: tuple) -> list[tuple[int, np.ndarray]]:
    """_paired_rows of an index (its names and keys: null draws ask for the same index many times)."""
    network = names.index(NETWORK_KEY)
    groups: dict[tuple, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key[:network] + key[network + 1:], []).append(position)
    out = []
    for rows in groups.values():
        dense = [r for r in rows if keys[r][network] == 0]
        sparse = np.array([r for r in rows if keys[r][network] != 0], dtype=int)
        if len(dense) == 1 and len(sparse):
            out.append((dense[0], sparse))
    return out


def center_networks(table: pd.DataFrame) -> pd.DataFrame:
    """The unit table with each sparse network's mean (over units) difference to the dense model
    of its paired cell removed: every paired effect is then 0, and each unit keeps its own
    deviation, the noise a null draw flips."""
    values = table.to_numpy(dtype=float).copy()
    for dense, sparse in _paired_rows(table):
        for row in sparse:
            difference = values[row] - values[dense]
            if np.isfinite(difference).any():
                values[row] -= np.nanmean(difference)
    return pd.DataFrame(values, index=table.index, columns=table.columns)


def flip_networks(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The unit table with random signs for the (centred) paired differences ticket - dense: each
    difference split into its ticket replicate's mean and the unit's deviation from it, the first
    signed at random per replicate, the second per unit, the same signs in every cell (so the
    replicates' spread, the seeds' spread and the cells' correlation all stay as they were, and
    the network makes no difference on average). With one replicate: a random sign per unit."""
    values = table.to_numpy(dtype=float).copy()
    replicate = np.asarray(table.columns.get_level_values("replicate"))
    groups, codes = np.unique(replicate, return_inverse=True)
    by_replicate = rng.choice((-1.0, 1.0), len(groups))[codes]
    by_unit = rng.choice((-1.0, 1.0), len(replicate))
    for dense, sparse in _paired_rows(table):
        difference = values[sparse] - values[dense]
        means = np.zeros_like(difference)
        for group in range(len(groups)):
            columns = codes == group
            with np.errstate(invalid="ignore"):
                means[:, columns] = np.nanmean(difference[:, columns], axis=1, keepdims=True) \
                    if np.isfinite(difference[:, columns]).any() else np.nan
        values[sparse] = values[dense] + by_replicate * means + by_unit * (difference - means)
    return pd.DataFrame(values, index=table.index, columns=table.columns)


def shift_cells(table: pd.DataFrame, chosen: Callable[[tuple], bool], amount: float) -> pd.DataFrame:
    """The unit table with `amount` added to every unit of the cells whose key `chosen` accepts."""
    keys = [key if isinstance(key, tuple) else (key,) for key in table.index]
    mask = np.array([bool(chosen(dict(zip(table.index.names, key)))) for key in keys])
    if not mask.any():
        return table
    values = table.to_numpy(dtype=float).copy()
    values[mask] += amount
    return pd.DataFrame(values, index=table.index, columns=table.columns)
