"""Published numbers (ILM-VP CVPR 2023 main table, SMM ICML 2024 Table 1) beside ours.

The CSVs in `reprolib/published/` are copies of the papers' tables, each opening with `#`
lines that give the source; `published_source(name)` returns those lines. Published
accuracies are percentages; our ledger stores fractions, converted here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from reprolib.errors import check_choice, check_type
from reprolib.paths import PUBLISHED_DIR
from reprolib.study.stats import t_interval
from reprolib.transfer.registry import Arm, arms


@dataclass(frozen=True)
class PublishedTable:
    """One paper's table: its CSV, and how the paper names an arm's column (read from the arm's
    entry; None for an arm the paper has no name for). The CSV's own column order is kept."""

    name: str
    file: str
    column_of: Callable[[Arm], str | None]


def _ilmvp_column(arm: Arm) -> str | None:
    """ILM-VP names its columns `<label map>_<method>` ('ilm_vp', 'flm_vp') and the probe 'lp'."""
    return f"{arm.label_map}_{arm.method}" if arm.label_map else arm.method


_TABLES = {table.name: table for table in (
    PublishedTable("ilmvp", "ilmvp_cvpr23_main_table.csv", _ilmvp_column),
    # SMM's Table 1 names its prompts as our prompt-comparison figure does (Arm.short).
    PublishedTable("smm", "smm_icml24_table1.csv", lambda arm: arm.short),
)}
TABLES = {name: table.file for name, table in _TABLES.items()}
COMPARISON_COLUMNS = ["table", "backbone", "dataset", "arm", "published", "published_std",
                      "ours", "ours_std", "ours_low", "ours_high", "n_seeds", "difference"]


def names() -> list[str]:
    return list(TABLES)


def arm_columns(name: str) -> dict[str, str]:
    """Our arm -> the published column holding the same method, in the table's column order:
    every registered arm whose column (as the table names it) is one of the table's."""
    table = _TABLES[check_choice("published table", name, TABLES)]
    by_column = {table.column_of(arm): arm.name for arm in arms()}
    return {by_column[column]: column for column in load_published(name).columns if column in by_column}


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
    for arm, column in arm_columns(name).items():
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
