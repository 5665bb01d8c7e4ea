"""Shared pieces of the plots: saving figures and tables atomically, ordering, aggregation.

Figures are built with `matplotlib.figure.Figure` (no pyplot state), so a plotting function
is pure: ledger in, Figure out. `save` writes PNG and PDF; `save_table` CSV and Markdown.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from reprolib.errors import ReprolibError
from reprolib.records import atomic_write_bytes
from reprolib.stats import t_interval

# Display order of transfer arms and their colours (stable across figures).
ARM_ORDER = ["lp", "vp/ilm", "vp/flm", "vp/rlm", "smm/ilm", "narrow/ilm", "medium/ilm", "full/ilm"]
PALETTE = {"lp": "#1f77b4", "vp/ilm": "#d62728", "vp/flm": "#ff7f0e", "vp/rlm": "#e377c2",
           "smm/ilm": "#2ca02c", "narrow/ilm": "#9467bd", "medium/ilm": "#8c564b", "full/ilm": "#17becf"}
KIND_MARKERS = {"imp": "o", "magnitude": "s", "random": "X", "imported": "D"}   # imported: at its measured density
METRIC_LABELS = {"accuracy": "accuracy (%)", "ece": "ECE", "mce": "MCE", "nll": "NLL",
                 "brier": "Brier score", "legacy_rlt_ece": "legacy RLT \"ECE\""}


def ordered(values: list[str], order: list[str]) -> list[str]:
    """`values` in the order of `order`, unknown ones after it alphabetically."""
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def arm_color(arm: str) -> str:
    return PALETTE.get(arm, "#7f7f7f")


def shot_label(n_shot: int) -> str:
    return "full" if int(n_shot) < 0 else f"{int(n_shot)}-shot"


def require(ledger: pd.DataFrame, columns: list[str], what: str) -> None:
    """A one-line error when the ledger lacks the columns a figure needs."""
    missing = [c for c in columns if c not in ledger.columns]
    if missing:
        raise ReprolibError(f"{what} needs ledger columns {missing}; valid ledgers come from reprolib.ledger.build_ledger")


INTERVAL_NOTE = "bars: 95% t interval over seeds (no bar: one run)"


def summarize(ledger: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Per group: mean of `metric` over its runs (seeds), the 95% t interval (`low`, `high`; NaN
    for one run, reprolib.stats.t_interval) and `count`."""
    rows = []
    for key, values in ledger.groupby(by, dropna=False)[metric]:
        interval = t_interval(values.to_numpy(dtype=float))
        rows.append([*(key if isinstance(key, tuple) else (key,)), interval.mean, interval.low, interval.high,
                     interval.n])
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "count"])


def interval_yerr(summary: pd.DataFrame, scale: float = 1.0) -> list:
    """Matplotlib's asymmetric `yerr` for a `summarize` table: [below, above] the mean, no bar
    (0) where there is no interval (one run)."""
    below = (summary["mean"] - summary["low"]).fillna(0.0) * scale
    above = (summary["high"] - summary["mean"]).fillna(0.0) * scale
    return [below.to_numpy(), above.to_numpy()]


def imp_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    """The IMP-ticket runs (the dense model is IMP level 0)."""
    return ledger[ledger["ticket_kind"] == "imp"]


def density_lines(ax, rows: pd.DataFrame, metric: str, scale: float = 1.0) -> None:
    """One line per arm: mean over seeds of `metric` against density with its 95% t interval as
    error bars (INTERVAL_NOTE), dense on the left.

    The x axis is logarithmic (IMP densities are 0.8^level) with the densities themselves as
    plain tick labels.
    """
    for arm in ordered(rows["arm"].tolist(), ARM_ORDER):
        s = summarize(rows[rows["arm"] == arm], ["density"], metric).sort_values("density", ascending=False)
        ax.errorbar(100 * s["density"], scale * s["mean"], yerr=interval_yerr(s, scale), marker="o",
                    color=arm_color(arm), label=arm, capsize=2)
    ax.set_xscale("log")
    density_ticks(ax, rows["density"])
    ax.invert_xaxis()
    ax.grid(alpha=0.3)


def density_ticks(ax, densities: pd.Series) -> None:
    """Plain tick labels (in %) at each density in `densities` on a log density axis."""
    ticks = sorted({round(100 * float(d), 1) for d in densities.dropna()}, reverse=True)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def empty_figure(message: str, size: tuple[float, float] = (6, 2)) -> Figure:
    """A figure that says why there is nothing to draw (no data of that kind yet)."""
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write `fig` as `<out_dir>/<name>.png` and `.pdf`, each atomically; returns the paths."""
    if not name or "/" in name:
        raise ReprolibError(f"figure name {name!r} must be a plain file stem like 'accuracy_vs_sparsity'")
    paths = []
    for fmt in ("png", "pdf"):
        buffer = io.BytesIO()
        # Fixed metadata so an unchanged figure gives the same bytes (diffable, cacheable).
        metadata = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
        fig.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)
        path = Path(out_dir) / f"{name}.{fmt}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def to_markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub Markdown table (pandas' to_markdown needs tabulate, which we do not ship), followed
    by `table.attrs["footnote"]` when the table has one."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else format(value, floatfmt)
        return "" if value is None else str(value).replace("|", "\\|")

    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    if table.attrs.get("footnote"):   # e.g. few_shot_pivot's note on capped cells
        lines += ["", str(table.attrs["footnote"])]
    return "\n".join(lines) + "\n"


def save_table(table: pd.DataFrame, out_dir: str | Path, name: str) -> list[Path]:
    """Write `table` as `<out_dir>/<name>.csv` and `.md`, each atomically; returns the paths."""
    csv_path, md_path = Path(out_dir) / f"{name}.csv", Path(out_dir) / f"{name}.md"
    atomic_write_bytes(csv_path, table.to_csv(index=False).encode())
    atomic_write_bytes(md_path, to_markdown(table).encode())
    return [csv_path, md_path]
