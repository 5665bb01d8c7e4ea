"""Tables drawn from the ledger: tidy summaries and readable pivots, every number a mean over
seeds with its 95% interval and n (reprolib.study.stats.two_level_interval: t over the seeds, or
over the ticket replicates when there are several; a single run reads "one run", seeds that
agree exactly "all n seeds equal")."""

from __future__ import annotations

import pandas as pd

from reprolib.plots.common import ARM_ORDER, full_data_last, ordered, require, shot_label
from reprolib.study.effects import with_replicate
from reprolib.study.stats import two_level_interval

CELL_NOTE = ("cells: mean over seeds [95% t interval] n=runs (reprolib.study.stats.two_level_interval: t over the "
             "seeds, or over the ticket replicates, 'in R replicates'); \"one run\": a single seed, no interval; "
             "\"all n seeds equal\": the runs agree exactly, so there is no spread to make an interval from")


def interval_of(rows: pd.DataFrame, metric: str, scale: float = 1.0):
    """The Interval of `metric` x `scale` over `rows` (seeds; clustered by ticket replicate)."""
    rows = with_replicate(rows)
    return two_level_interval(rows[metric].to_numpy(dtype=float) * scale, rows["replicate"].to_numpy())


def _interval_cells(rows: pd.DataFrame, keys: list[str], metric: str, digits: int) -> pd.DataFrame:
    """`keys` + `cell`: 'mean [low, high] n=k' of `metric` (accuracy in percent) per group."""
    scale = 100.0 if metric == "accuracy" else 1.0
    cells = [[*(key if isinstance(key, tuple) else (key,)), interval_of(group, metric, scale).cell(digits)]
             for key, group in rows.groupby(keys)]
    return pd.DataFrame(cells, columns=[*keys, "cell"])

GROUP = ["target", "arm", "ticket_kind", "level", "density", "n_shot"]


def summary_table(ledger: pd.DataFrame, metrics: list[str] = ("accuracy", "ece"), by: list[str] = GROUP) -> pd.DataFrame:
    """Per group: the seed count and, for each metric, the mean over seeds and its 95% t interval
    (`<metric>_mean`, `_low`, `_high`; accuracy in percent; low/high empty for one run)."""
    metrics = list(metrics)
    require(ledger, [*by, *metrics, "seed"], "summary_table")
    grouped = ledger.groupby(list(by), dropna=False)
    out = grouped["seed"].nunique().rename("n_seeds").to_frame()
    for metric in metrics:
        scale = 100.0 if metric == "accuracy" else 1.0
        intervals = [interval_of(group, metric, scale) for _, group in grouped]
        for part in ("mean", "low", "high"):
            out[f"{metric}_{part}"] = [getattr(i, part) for i in intervals]
    out = out.reset_index()
    if "arm" in out:
        rank = {a: i for i, a in enumerate(ordered(out["arm"].tolist(), ARM_ORDER))}
        out = out.sort_values(list(by), key=lambda s: s.map(rank) if s.name == "arm" else s, ignore_index=True)
    out.attrs["footnote"] = ("mean over seeds and its 95% interval (low, high; t over the seeds, or over the ticket "
                             "replicates); n_seeds = n; one seed: no interval; seeds that agree exactly: low = high")
    return out


def interval_pivot(ledger: pd.DataFrame, metric: str = "accuracy", n_shot: int = -1, digits: int = 1) -> pd.DataFrame:
    """Rows target x arm, one column per ticket (kind and level): 'mean [95% interval] n=seeds'."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", metric], "interval_pivot")
    rows = ledger[ledger["n_shot"] == n_shot]
    if rows.empty:
        return pd.DataFrame(columns=["target", "arm"])
    stats = _interval_cells(rows, ["target", "arm", "ticket_kind", "level"], metric, digits)
    stats["ticket"] = [("dense" if (k == "imp" and lv == 0) else f"{k} L{lv}")
                       for k, lv in zip(stats["ticket_kind"], stats["level"])]
    order = (stats.assign(dense=stats["ticket"] != "dense", baseline=stats["ticket_kind"] != "imp")
             .sort_values(["dense", "baseline", "ticket_kind", "level"])["ticket"].drop_duplicates().tolist())
    wide = stats.pivot(index=["target", "arm"], columns="ticket", values="cell")[order].reset_index()
    wide.columns.name = None
    rank = {a: i for i, a in enumerate(ordered(wide["arm"].tolist(), ARM_ORDER))}
    wide = wide.sort_values(["target", "arm"], key=lambda s: s.map(rank) if s.name == "arm" else s, ignore_index=True)
    wide.insert(2, "shots", shot_label(n_shot))
    wide.attrs["footnote"] = CELL_NOTE
    return wide


CAPPED_MARK = "†"
CAPPED_FOOTNOTE = (f"{CAPPED_MARK} capped: some classes have fewer training images than n_shot and keep all "
                   "of them (RLT's behaviour, docs/methods.md s.8); the number after the mark is the smallest "
                   "effective shots per class")


def few_shot_pivot(ledger: pd.DataFrame, metric: str = "accuracy", digits: int = 1) -> pd.DataFrame:
    """Rows target x arm x IMP level, one column per n-shot: 'mean [95% interval] n=seeds'.

    A cell whose runs were capped (ledger `capped` > 0) reads '... †k', k the smallest
    effective shots per class; the table's `attrs["footnote"]` then also explains the mark.
    """
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", metric], "few_shot_pivot")
    rows = ledger[ledger["ticket_kind"] == "imp"]
    if rows.empty:
        return pd.DataFrame(columns=["target", "arm", "level"])
    keys = ["target", "arm", "level", "n_shot"]
    stats = _interval_cells(rows, keys, metric, digits)
    capped_any = False
    if "capped" in rows and "shots_min" in rows:
        marks = (rows.assign(capped=pd.to_numeric(rows["capped"], errors="coerce").fillna(0))
                 .groupby(keys).agg(capped=("capped", "max"), shots_min=("shots_min", "min")).reset_index())
        stats = stats.merge(marks, on=keys, how="left")
        flagged = stats["capped"].fillna(0) > 0
        stats.loc[flagged, "cell"] = [f"{c} {CAPPED_MARK}{int(k)}" for c, k in
                                      zip(stats.loc[flagged, "cell"], stats.loc[flagged, "shots_min"])]
        capped_any = bool(flagged.any())
    shots = full_data_last(stats["n_shot"].unique())
    stats["shots"] = stats["n_shot"].map(shot_label)
    wide = stats.pivot(index=["target", "arm", "level"], columns="shots", values="cell")
    wide = wide[[shot_label(n) for n in shots]].reset_index()
    wide.columns.name = None
    rank = {a: i for i, a in enumerate(ordered(wide["arm"].tolist(), ARM_ORDER))}
    wide = wide.sort_values(["target", "arm", "level"], key=lambda s: s.map(rank) if s.name == "arm" else s,
                            ignore_index=True)
    wide.attrs["footnote"] = CELL_NOTE + ("\n\n" + CAPPED_FOOTNOTE if capped_any else "")
    return wide
