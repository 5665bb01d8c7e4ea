"""Published numbers (ILM-VP CVPR 2023 main table, SMM ICML 2024 Table 1) beside ours.

The CSVs in `reprolib/published/` are copies of the papers' tables, each opening with `#`
lines that give the source; `published_source(name)` returns those lines. Published
accuracies are percentages; our ledger stores fractions, converted here.
"""

from __future__ import annotations

import pandas as pd

from reprolib.errors import check_choice, check_type
from reprolib.paths import PUBLISHED_DIR
from reprolib.study.stats import t_interval

TABLES = {"ilmvp": "ilmvp_cvpr23_main_table.csv", "smm": "smm_icml24_table1.csv"}
# Our arm -> the published column holding the same method, per table.
ARM_COLUMNS = {
    "ilmvp": {"vp/ilm": "ilm_vp", "vp/rlm": "rlm_vp", "vp/flm": "flm_vp", "lp": "lp"},
    "smm": {"vp/ilm": "pad", "narrow/ilm": "narrow", "medium/ilm": "medium", "full/ilm": "full", "smm/ilm": "smm"},
}
COMPARISON_COLUMNS = ["table", "backbone", "dataset", "arm", "published", "published_std",
                      "ours", "ours_std", "ours_low", "ours_high", "n_seeds", "difference"]


def names() -> list[str]:
    return list(TABLES)


def load_published(name: str) -> pd.DataFrame:
    """One published table (accuracy %, with `<column>_std` columns); empty cells are NaN."""
    check_choice("published table", name, TABLES)
    return pd.read_csv(PUBLISHED_DIR / TABLES[name], comment="#")


def published_source(name: str) -> list[str]:
    """The table's source lines (the leading `#` comments, without the `# `)."""
    check_choice("published table", name, TABLES)
    lines = (PUBLISHED_DIR / TABLES[name]).read_text().splitlines()
    return [line.lstrip("#").strip() for line in lines if line.startswith("#")]


def published_long(name: str) -> pd.DataFrame:
    """The table in long form: backbone, dataset, arm, published, published_std."""
    table = load_published(name)
    rows = []
    for arm, column in ARM_COLUMNS[name].items():
        part = table[["backbone", "dataset", column, f"{column}_std"]].rename(
            columns={column: "published", f"{column}_std": "published_std"})
        rows.append(part.assign(arm=arm, table=name))
    out = pd.concat(rows, ignore_index=True)
    return out[out["published"].notna()][["table", "backbone", "dataset", "arm", "published", "published_std"]]


def compare(ledger: pd.DataFrame, name: str) -> pd.DataFrame:
    """Our dense full-data accuracy (mean, std over seeds as the papers give theirs, and the 95%
    t interval `ours_low`/`ours_high`, empty for one seed; %) beside the published numbers.

    Only rows both sides have appear; `difference` = ours - published (points). The paper
    tables use CoOp splits and 200 epochs, so check the ledger's `split` and `protocol`
    columns before reading a difference as a reproduction failure.
    """
    check_type("ledger", ledger, pd.DataFrame)
    published = published_long(name)
    ours = ledger[(ledger["ticket_kind"] == "imp") & (ledger["level"] == 0) & (ledger["n_shot"] == -1)]
    if ours.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    stats = (ours.groupby(["backbone", "target", "arm"])["accuracy"].agg(["mean", "std", "count"]).reset_index()
             .rename(columns={"target": "dataset", "mean": "ours", "std": "ours_std", "count": "n_seeds"}))
    stats["ours"] *= 100.0
    stats["ours_std"] = stats["ours_std"].fillna(0.0) * 100.0
    intervals = [t_interval(100.0 * g.to_numpy(dtype=float))
                 for _, g in ours.groupby(["backbone", "target", "arm"])["accuracy"]]
    stats["ours_low"], stats["ours_high"] = [i.low for i in intervals], [i.high for i in intervals]
    merged = published.merge(stats, on=["backbone", "dataset", "arm"], how="inner")
    merged["difference"] = merged["ours"] - merged["published"]
    return merged[COMPARISON_COLUMNS].round(2).reset_index(drop=True)
