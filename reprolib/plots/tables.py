"""Tables drawn from the ledger: tidy summaries (mean, std, seeds) and readable pivots."""

from __future__ import annotations

import pandas as pd

from reprolib.plots.common import ARM_ORDER, ordered, require, shot_label

GROUP = ["target", "arm", "ticket_kind", "level", "density", "n_shot"]


def summary_table(ledger: pd.DataFrame, metrics: list[str] = ("accuracy", "ece"), by: list[str] = GROUP) -> pd.DataFrame:
    """Mean and std over seeds of each metric per group (accuracy in percent), with the seed count."""
    metrics = list(metrics)
    require(ledger, [*by, *metrics, "seed"], "summary_table")
    grouped = ledger.groupby(list(by), dropna=False)
    out = grouped["seed"].nunique().rename("n_seeds").to_frame()
    for metric in metrics:
        scale = 100.0 if metric == "accuracy" else 1.0
        out[f"{metric}_mean"] = grouped[metric].mean() * scale
        out[f"{metric}_std"] = grouped[metric].std().fillna(0.0) * scale
    out = out.reset_index()
    if "arm" in out:
        rank = {a: i for i, a in enumerate(ordered(out["arm"].tolist(), ARM_ORDER))}
        out = out.sort_values(list(by), key=lambda s: s.map(rank) if s.name == "arm" else s, ignore_index=True)
    return out


def mean_std_pivot(ledger: pd.DataFrame, metric: str = "accuracy", n_shot: int = -1, digits: int = 1) -> pd.DataFrame:
    """Rows target x arm, one column per ticket (kind and level): 'mean ± std' over seeds."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", metric], "mean_std_pivot")
    rows = ledger[ledger["n_shot"] == n_shot]
    if rows.empty:
        return pd.DataFrame(columns=["target", "arm"])
    scale = 100.0 if metric == "accuracy" else 1.0
    stats = rows.groupby(["target", "arm", "ticket_kind", "level"])[metric].agg(["mean", "std"]).reset_index()
    stats["cell"] = [f"{scale * m:.{digits}f} ± {0.0 if pd.isna(s) else scale * s:.{digits}f}"
                     for m, s in zip(stats["mean"], stats["std"])]
    stats["ticket"] = [("dense" if (k == "imp" and lv == 0) else f"{k} L{lv}")
                       for k, lv in zip(stats["ticket_kind"], stats["level"])]
    order = (stats.assign(dense=stats["ticket"] != "dense", baseline=stats["ticket_kind"] != "imp")
             .sort_values(["dense", "baseline", "ticket_kind", "level"])["ticket"].drop_duplicates().tolist())
    wide = stats.pivot(index=["target", "arm"], columns="ticket", values="cell")[order].reset_index()
    wide.columns.name = None
    rank = {a: i for i, a in enumerate(ordered(wide["arm"].tolist(), ARM_ORDER))}
    wide = wide.sort_values(["target", "arm"], key=lambda s: s.map(rank) if s.name == "arm" else s, ignore_index=True)
    wide.insert(2, "shots", shot_label(n_shot))
    return wide


CAPPED_MARK = "†"
CAPPED_FOOTNOTE = (f"{CAPPED_MARK} capped: some classes have fewer training images than n_shot and keep all "
                   "of them (RLT's behaviour, docs/methods.md s.8); the number after the mark is the smallest "
                   "effective shots per class")


def few_shot_pivot(ledger: pd.DataFrame, metric: str = "accuracy", digits: int = 1) -> pd.DataFrame:
    """Rows target x arm x IMP level, one column per n-shot: 'mean ± std' over seeds.

    A cell whose runs were capped (ledger `capped` > 0) reads 'mean ± std †k', k the smallest
    effective shots per class; the table's `attrs["footnote"]` then explains the mark.
    """
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", metric], "few_shot_pivot")
    rows = ledger[ledger["ticket_kind"] == "imp"]
    if rows.empty:
        return pd.DataFrame(columns=["target", "arm", "level"])
    scale = 100.0 if metric == "accuracy" else 1.0
    keys = ["target", "arm", "level", "n_shot"]
    stats = rows.groupby(keys)[metric].agg(["mean", "std"]).reset_index()
    stats["cell"] = [f"{scale * m:.{digits}f} ± {0.0 if pd.isna(s) else scale * s:.{digits}f}"
                     for m, s in zip(stats["mean"], stats["std"])]
    capped_any = False
    if "capped" in rows and "shots_min" in rows:
        marks = (rows.assign(capped=pd.to_numeric(rows["capped"], errors="coerce").fillna(0))
                 .groupby(keys).agg(capped=("capped", "max"), shots_min=("shots_min", "min")).reset_index())
        stats = stats.merge(marks, on=keys, how="left")
        flagged = stats["capped"].fillna(0) > 0
        stats.loc[flagged, "cell"] = [f"{c} {CAPPED_MARK}{int(k)}" for c, k in
                                      zip(stats.loc[flagged, "cell"], stats.loc[flagged, "shots_min"])]
        capped_any = bool(flagged.any())
    shots = sorted(stats["n_shot"].unique(), key=lambda n: (n < 0, n))
    stats["shots"] = stats["n_shot"].map(shot_label)
    wide = stats.pivot(index=["target", "arm", "level"], columns="shots", values="cell")
    wide = wide[[shot_label(n) for n in shots]].reset_index()
    wide.columns.name = None
    rank = {a: i for i, a in enumerate(ordered(wide["arm"].tolist(), ARM_ORDER))}
    wide = wide.sort_values(["target", "arm", "level"], key=lambda s: s.map(rank) if s.name == "arm" else s,
                            ignore_index=True)
    if capped_any:
        wide.attrs["footnote"] = CAPPED_FOOTNOTE
    return wide
