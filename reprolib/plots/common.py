"""Shared pieces of the plots: saving figures and tables atomically, ordering, aggregation.

Figures are built with `matplotlib.figure.Figure` (no pyplot state), so a plotting function
is pure: ledger in, Figure out, or None when the ledger holds nothing it could draw (no
placeholder is ever made). `save` writes PNG and PDF, refuses a figure with a panel that
shows no data, and for None says in one line why there is no figure (removing a stale file of
that name); `save_table` writes CSV and Markdown.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import Collection, LineCollection, PathCollection
from matplotlib.figure import Figure, FigureBase
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from reprolib.errors import ReprolibError
from reprolib.scores.registry import entries as metric_entries
from reprolib.scores.registry import names as metric_names
from reprolib.records import atomic_write_bytes
from reprolib.study.effects import with_replicate
from reprolib.study.stats import two_level_interval
from reprolib.transfer import registry as method_registry

# Display order of transfer arms, their colours and names (stable across figures): the method
# registry's arms (transfer/registry.py `MethodSpec.arms`).
ARM_ORDER = [arm.name for arm in method_registry.arms()]
PALETTE = {arm.name: arm.color for arm in method_registry.arms()}
ARM_LABELS = {arm.name: arm.label for arm in method_registry.arms()}
KIND_MARKERS = {"imp": "o", "magnitude": "s", "random": "X", "imported": "D"}   # imported: at its measured density
# Each registered metric's display name, with "(%)" for a percentage (reprolib.scores.registry).
METRIC_LABELS = {m.name: m.display + (" (%)" if m.unit == "%" else "") for m in metric_entries()}


def shown_metrics(ledger: pd.DataFrame, place: str) -> list[str]:
    """The registered metrics shown in `place` that the ledger has a value of (a ledger written
    before a metric was registered, and not recomputed, lacks its column or leaves it empty)."""
    return [name for name in metric_names(place=place) if name in ledger and ledger[name].notna().any()]


def ordered(values: list[str], order: list[str]) -> list[str]:
    """`values` in the order of `order`, unknown ones after it alphabetically."""
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def arm_color(arm: str) -> str:
    return PALETTE.get(arm, "#7f7f7f")


def arm_label(arm: str) -> str:
    """The arm's display name from the method registry ('vp/ilm' -> 'VP-ILM'); unknown arms as they are."""
    return ARM_LABELS.get(arm, str(arm))


def shot_label(n_shot: int) -> str:
    return "full" if int(n_shot) < 0 else f"{int(n_shot)}-shot"


def full_data_last(shots) -> list:
    """Shots per class in increasing order, full data (-1) last."""
    return sorted(shots, key=lambda n: (n < 0, n))


def require(ledger: pd.DataFrame, columns: list[str], what: str) -> None:
    """A one-line error when the ledger lacks the columns a figure needs."""
    missing = [c for c in columns if c not in ledger.columns]
    if missing:
        raise ReprolibError(f"{what} needs ledger columns {missing}; valid ledgers come from reprolib.study.ledger.build_ledger")


INTERVAL_NOTE = "bars: 95% t interval over seeds (no bar: one run)"


def summarize(ledger: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Per group: mean of `metric` over its runs (seeds), the 95% interval (`low`, `high`; NaN
    for one run; reprolib.study.stats.two_level_interval: over the ticket replicates when there
    are several) and `count`."""
    rows = []
    for key, group in with_replicate(ledger).groupby(by, dropna=False):
        interval = two_level_interval(group[metric].to_numpy(dtype=float), group["replicate"].to_numpy())
        rows.append([*(key if isinstance(key, tuple) else (key,)), interval.mean, interval.low, interval.high,
                     interval.n])
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "count"])


def interval_yerr(summary: pd.DataFrame, scale: float = 1.0) -> list:
    """Matplotlib's asymmetric `yerr` for a `summarize` table: [below, above] the mean, no bar
    (0) where there is no interval (one run)."""
    below = (summary["mean"] - summary["low"]).fillna(0.0) * scale
    above = (summary["high"] - summary["mean"]).fillna(0.0) * scale
    return [below.to_numpy(), above.to_numpy()]


# gid of drawn aids that are not data (chance lines, diagonals): save's data check ignores them.
REFERENCE = "reference"
KIND_LABELS = {"imp": "IMP", "magnitude": "magnitude", "random": "random", "imported": "imported"}


def sparse_kind(ledger: pd.DataFrame) -> str:
    """The kind of sparse network a study's trend is drawn over: IMP when it has IMP levels above
    0, else its most common other kind (a pretrained backbone's one-shot pruned networks)."""
    sparse = ledger[ledger["level"] > 0] if "level" in ledger else ledger.head(0)
    if (sparse["ticket_kind"] == "imp").any() or sparse.empty:
        return "imp"
    return str(sparse["ticket_kind"].value_counts().idxmax())


def trend_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    """Dense (IMP level 0) and the study's sparse family (`sparse_kind`): the rows a line over
    density is drawn from."""
    kind = sparse_kind(ledger)
    return ledger[(ledger["ticket_kind"] == kind) | ((ledger["ticket_kind"] == "imp") & (ledger["level"] == 0))]


def headline_shot(ledger: pd.DataFrame) -> int:
    """The headline setting: full data (-1) when every (target, arm) of the study has full-data
    runs, else the largest n-shot (a few-shot study, or one that runs full data only for some
    claim's cells, as imagenet-lite does for digits)."""
    shots = ledger["n_shot"].dropna().astype(int)
    if shots.empty or (shots == -1).all():
        return -1
    if "arm" not in ledger or "target" not in ledger:   # no cells to ask: full data wherever it ran
        return -1 if (shots == -1).any() else int(shots.max())
    cells = ledger.groupby(["target", "arm"])["n_shot"].apply(lambda n: (n == -1).any())
    return -1 if cells.all() else int(shots.max())


def own_shot_settings(ledger: pd.DataFrame) -> list[int]:
    """The few-shot settings that get a figure of their own beside the headline one: all but the
    headline's (a study without full-data runs would draw its headline figure twice)."""
    headline = headline_shot(ledger)
    return sorted(int(n) for n in ledger["n_shot"].dropna().unique() if 0 < n != headline)


def network_name(kind: str, level: int, density: float | None = None) -> str:
    """'dense', 'IMP level 4' or 'magnitude level 2', with '(41.0% dense)' when given."""
    name = "dense" if kind == "imp" and int(level) == 0 else f"{KIND_LABELS.get(kind, kind)} level {int(level)}"
    return name if density is None or pd.isna(density) or name == "dense" else f"{name} ({100 * float(density):.1f}% dense)"


def density_lines(ax, rows: pd.DataFrame, metric: str, scale: float = 1.0) -> None:
    """One line per arm: mean over seeds of `metric` against density with its 95% t interval as
    error bars (INTERVAL_NOTE), the dense model on the left joined to the study's sparse family
    (`rows` are `trend_rows`: IMP tickets, or a pretrained backbone's one-shot networks). Dense
    and IMP tickets are filled circles, another family its KIND_MARKERS marker, hollow
    (`marker_note` says so in a legend).

    The x axis is logarithmic (IMP densities are 0.8^level) with the densities themselves as
    plain tick labels.
    """
    kind = sparse_kind(rows)
    for arm in ordered(rows["arm"].tolist(), ARM_ORDER):
        s = summarize(rows[rows["arm"] == arm], ["density"], metric).sort_values("density", ascending=False)
        dense = (s["density"] >= 1.0).to_numpy()
        ax.errorbar(100 * s["density"], scale * s["mean"], yerr=interval_yerr(s, scale), marker="o",
                    markevery=None if kind == "imp" else list(np.flatnonzero(dense)), color=arm_color(arm),
                    label=arm, capsize=2)
        if kind != "imp":
            ax.plot(100 * s["density"][~dense], scale * s["mean"][~dense], linestyle="none", color=arm_color(arm),
                    marker=KIND_MARKERS.get(kind, "o"), markerfacecolor="white")
    ax.set_xscale("log")
    density_ticks(ax, rows["density"])
    ax.invert_xaxis()
    ax.grid(alpha=0.3)


MARKER_NAMES = {"o": "o", "s": "□", "X": "x", "D": "◇"}


def marker_note(rows: pd.DataFrame) -> str:
    """What the markers of `density_lines` are: 'o dense and IMP tickets', or 'o dense, □ one-shot magnitude'."""
    kind = sparse_kind(rows)
    if kind == "imp":
        return "o dense and IMP tickets"
    family = "one-shot " + kind if (rows.get("provenance", pd.Series(dtype=str)) == "oneshot").any() else kind
    return f"o dense, {MARKER_NAMES[KIND_MARKERS.get(kind, 'o')]} {family}"


def density_ticks(ax, densities: pd.Series) -> None:
    """Plain tick labels (in %) at each density in `densities` on a log density axis."""
    ticks = sorted({round(100 * float(d), 1) for d in densities.dropna()}, reverse=True)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def percent_ticks(axis, values) -> None:
    """Plain percent tick labels ('41', '64', '80') at `values` on a log axis (`ax.yaxis` or `ax.xaxis`),
    instead of the log locator's '4x10^1'."""
    ticks = sorted({round(float(v), 1) for v in values})
    axis.set_ticks(ticks, [f"{t:g}" for t in ticks])
    axis.set_minor_locator(matplotlib.ticker.NullLocator())


def _finite_points(points: np.ndarray) -> bool:
    points = np.asarray(points, dtype=float).reshape(-1, 2) if np.size(points) else np.empty((0, 2))
    return bool(np.isfinite(points).all(axis=1).any())


def shows_data(artist: Artist) -> bool:
    """True for a visible artist that draws at least one finite data point, bar or image."""
    if not artist.get_visible() or artist.get_gid() == REFERENCE:
        return False
    if isinstance(artist, Line2D):
        try:
            return _finite_points(np.column_stack([np.asarray(v, dtype=float) for v in artist.get_data()]))
        except (TypeError, ValueError):   # categorical data: present if there is any
            return len(artist.get_xdata()) > 0
    if isinstance(artist, Rectangle):
        return bool(np.isfinite([artist.get_width(), artist.get_height()]).all())
    if isinstance(artist, PathCollection):
        return _finite_points(artist.get_offsets())
    if isinstance(artist, LineCollection):
        return any(_finite_points(segment) for segment in artist.get_segments())
    if isinstance(artist, Collection):
        return any(_finite_points(path.vertices) for path in artist.get_paths())
    if isinstance(artist, AxesImage):
        return artist.get_array() is not None and np.size(artist.get_array()) > 0
    return False


def all_axes(fig: FigureBase) -> list[Axes]:
    """The axes of a figure and of its subfigures."""
    return list(fig.axes) + [ax for sub in fig.subfigs for ax in all_axes(sub)]


def empty_panels(fig: FigureBase) -> list[str]:
    """Titles of the panels (axes with their frame on) that show no data; ['the figure'] when no panel does."""
    panels = [ax for ax in all_axes(fig) if ax.axison and ax.get_visible()]
    empty = [ax.get_title() or f"panel {k + 1}" for k, ax in enumerate(panels)
             if not any(shows_data(a) for a in [*ax.lines, *ax.patches, *ax.collections, *ax.images])]
    return empty if panels else ["the figure"]


def save(fig: Figure | None, out_dir: str | Path, name: str, why: str = "") -> list[Path]:
    """Write `fig` as `<out_dir>/<name>.png` and `.pdf`, each atomically; returns the paths.

    None (a plot with nothing to draw): prints one line saying so (and `why`), removes an old
    figure of that name, writes nothing. A figure with a panel that shows no data is refused."""
    if not name or "/" in name:
        raise ReprolibError(f"figure name {name!r} must be a plain file stem like 'accuracy_vs_sparsity'")
    if fig is None:
        for fmt in ("png", "pdf"):
            (Path(out_dir) / f"{name}.{fmt}").unlink(missing_ok=True)
        print(f"{name}: nothing to draw" + (f" ({why})" if why else "") + "; no figure written")
        return []
    empty = empty_panels(fig)
    if empty:
        raise ReprolibError(f"figure {name!r} has panels without data: {empty}; a plot with nothing to draw "
                            "returns None instead")
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
        return "" if value is None or value is pd.NA else str(value).replace("|", "\\|")

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
