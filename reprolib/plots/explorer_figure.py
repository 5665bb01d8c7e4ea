"""The explorer's comparison figure: two networks' accuracy and one calibration metric (every
seed as a point, the mean, its 95% t interval) beside their reliability diagrams pooled over seeds.

`CompareFigure` lays the figure out once (fixed grid: no layout solver on a redraw) and `show`
sets it to any comparison (reprolib.plots.explorer.comparison) by updating its artists in place;
`png` renders it at `DPI`. The widgets keep one per session, so a change of a control costs the
update and the rendering only, and the rendering draws only what a comparison changes: the
frame, axes, labels and legends that stay the same are rendered once and their pixels reused
(matplotlib's blitting, `Blitted`: the changing artists are drawn over a copy of the rest).
`compare_panel` is one comparison drawn once (the saved figure).
Long labels are wrapped so that no text leaves the figure and no two tick labels overlap
(tests/test_explorer.py measures every text's extent).
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pandas as pd
import PIL.Image
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reprolib.plots.calibration import ReliabilityDiagram, add_reliability_legend, bin_edges
from reprolib.plots.common import shot_label
from reprolib.plots.explorer import DENSE, NetworkRuns, StudyIndex, comparison
from reprolib.scores.registry import get as get_metric

DPI = 100   # what the widget shows at 100% zoom: one figure pixel per screen pixel
SIZE = (12.0, 5.0)
COLORS = ("#4c72b0", "#dd8452")   # network A, network B
LABEL_WIDTH = 12   # characters per line of a network's tick label (two fit side by side)


def wrapped(label: str, width: int = LABEL_WIDTH) -> str:
    """A network's label over lines of at most `width` characters, its density on a line of its own."""
    name, _, density = label.partition(" (")
    lines = textwrap.wrap(name, width) + ([f"({density}"] if density else [])
    return "\n".join(lines)


def _interval_proxy():
    """A legend handle drawn as an error bar (legend handles need not live in the figure)."""
    return Figure().add_subplot().errorbar([0], [0], yerr=[[1], [1]], color="black", capsize=6, linewidth=1.2)


class CompareFigure:
    """The comparison figure, made once; `show(runs, seed)` redraws it for a comparison."""

    def __init__(self):
        fig = Figure(figsize=SIZE, dpi=DPI)
        self.blitted = Blitted(fig)
        self.figure, self.canvas = fig, self.blitted.canvas
        grid = fig.add_gridspec(2, 4, height_ratios=[3, 1], width_ratios=[1.2, 1.2, 1, 1], left=0.05, right=0.98,
                                top=0.86, bottom=0.36, wspace=0.3, hspace=0.1)
        self.strips = [fig.add_subplot(grid[:, column]) for column in (0, 1)]
        # Not shared axes: the diagrams' limits are fixed ([0, 1]), and sharing would make every
        # draw measure the siblings' tick labels.
        self.panels = [(fig.add_subplot(grid[0, column]), fig.add_subplot(grid[1, column])) for column in (2, 3)]
        self.panels[1][0].tick_params(labelleft=False)
        self.panels[1][1].tick_params(labelleft=False)
        self.diagrams: list[ReliabilityDiagram | None] = [None, None]
        self.drawn: list = []   # the strips' artists of the comparison shown
        ring = Line2D([], [], color="black", marker="o", markersize=9, markerfacecolor="none", linestyle="none")
        handles = [Line2D([], [], color="grey", marker="o", markersize=5, linestyle="none", alpha=0.75),
                   ring, Line2D([], [], color="black", linewidth=2), _interval_proxy()]
        fig.legend(handles, ["a seed", "picked seed", "mean", "95% t interval"], loc="lower left",
                   bbox_to_anchor=(0.055, 0.0), ncols=2, fontsize=8)
        add_reliability_legend(fig)
        named = fig.legends.pop()   # the reliability legend's entries, set in two columns under the diagrams
        fig.legend(handles=named.legend_handles, labels=[t.get_text() for t in named.texts], ncols=2, fontsize=7,
                   loc="lower center", bbox_to_anchor=(0.76, 0.0), title=named.get_title().get_text(),
                   title_fontsize=7)
        self.title = fig.suptitle("", fontsize=10)

    def show(self, runs: list[NetworkRuns], title: str, seed: int | None = None) -> Figure:
        """Both networks' seeds, means and intervals (the picked `seed` ringed) and their
        reliability diagrams; returns the figure."""
        for artist in self.drawn:
            artist.remove()
        self.drawn = []
        for ax, field, scale in zip(self.strips, ("accuracy", "values"), (100.0, 1.0)):
            self._strip(ax, runs, field, scale, seed)
        for k, (run, (ax, counts_ax)) in enumerate(zip(runs, self.panels)):
            shown = run.reliability is not None
            ax.set_visible(shown)
            counts_ax.set_visible(shown)
            if not shown:
                continue
            if self.diagrams[k] is None or not self.diagrams[k].fits(run.reliability):
                if self.diagrams[k] is not None:
                    self.diagrams[k].remove()
                self.diagrams[k] = ReliabilityDiagram(ax, bin_edges(run.reliability), counts_ax)
                if k == 1:   # its y axes are the left diagram's: no second label
                    ax.set_ylabel("")
                    counts_ax.set_ylabel("")
            self.diagrams[k].show(run.reliability, _diagram_title(run))
            ax.title.set_fontsize(8)
        self.title.set_text(title + (f"  (ringed: seed {seed})" if seed is not None else ""))
        return self.figure

    def _strip(self, ax: Axes, runs: list[NetworkRuns], field: str, scale: float, seed: int | None) -> None:
        """Each seed as a point, the mean as a bar across, the 95% t interval as an error bar;
        `field` is "accuracy" or "values" (the chosen metric)."""
        extent = []
        for x, (run, color) in enumerate(zip(runs, COLORS)):
            values = scale * np.asarray(getattr(run, field), dtype=float)
            self.drawn.append(ax.scatter(x + _offsets(len(values)), values, color=color, s=22, alpha=0.75, zorder=3))
            interval = getattr(run, f"{field}_interval")
            self.drawn.append(ax.hlines(scale * interval.mean, x - 0.28, x + 0.28, color="black", linewidth=2))
            extent += [*values, scale * interval.mean]
            if interval.n >= 2:
                low, high = scale * interval.low, scale * interval.high
                self.drawn.append(ax.errorbar(x, scale * interval.mean, yerr=[[scale * interval.mean - low],
                                                                              [high - scale * interval.mean]],
                                              color="black", capsize=6, linewidth=1.2))
                extent += [low, high]
        for x, run in enumerate(runs):   # the picked seed, ringed, above the points
            if seed in run.seeds:
                k = run.seeds.index(seed)
                value = scale * float(getattr(run, field)[k])
                self.drawn.append(ax.scatter([x + _offsets(len(run.seeds))[k]], [value], s=80, facecolors="none",
                                             edgecolors="black", linewidths=1.2, zorder=4))
        low, high = float(np.nanmin(extent)), float(np.nanmax(extent))
        pad = 0.08 * (high - low) or 0.05 * max(abs(high), 1.0)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks([0, 1], [wrapped(r.label) for r in runs], fontsize=8)
        ax.set_xlim(-0.6, 1.6)
        chosen = get_metric(runs[0].metric)
        better = "lower = better calibrated" if chosen.direction == "lower" else f"{chosen.direction} = better"
        ax.set_title("accuracy (%)" if field == "accuracy" else f"{chosen.display} ({better})", fontsize=9)
        ax.grid(alpha=0.3, axis="y")

    def _changing(self) -> list:
        """The artists a comparison changes, in drawing order: both strips, each shown diagram's
        bars, diagonal, frame and title, the figure's title."""
        out = list(self.strips)
        for diagram in self.diagrams:
            if diagram is not None and diagram.ax.get_visible():
                # in the order a full draw has (by zorder): bars, diagonal, frame, gap bars
                out += [*diagram.accuracy, diagram.diagonal, *diagram.ax.spines.values(), *diagram.over,
                        *diagram.under, diagram.ax.title]
                if diagram.counts is not None:
                    out += [*diagram.counts, *diagram.counts_ax.spines.values()]
        return out + [self.title]

    def png(self) -> bytes:
        """The figure as PNG bytes at DPI (what the widget shows): the unchanging part is rendered
        the first time (and again when a diagram is shown or hidden), the rest over its pixels."""
        return self.blitted.png(self._changing(), tuple(ax.get_visible() for ax, _ in self.panels))


class Blitted:
    """A figure whose unchanging pixels are kept between renderings (matplotlib's blitting): `png`
    draws the changing artists over a copy of the rest, rendered again only when `key` (what the
    unchanging part shows) changes. The explorer's two figures (CompareFigure, explorer_run.RunFigure)
    each keep one."""

    def __init__(self, figure: Figure):
        self.figure, self.canvas = figure, FigureCanvasAgg(figure)
        self.background, self.key = None, None   # the unchanging pixels, and what they show

    def png(self, changing: list, key: tuple) -> bytes:
        """PNG bytes at the figure's DPI; `changing`: the artists to draw over the rest, in drawing order."""
        if self.background is None or key != self.key:
            for artist in changing:
                artist.set_animated(True)   # left out of the full draw
            self.canvas.draw()
            self.background, self.key = self.canvas.copy_from_bbox(self.figure.bbox), key
            for artist in changing:
                artist.set_animated(False)
        else:
            self.canvas.restore_region(self.background)
        renderer = self.canvas.get_renderer()
        for artist in changing:
            artist.draw(renderer)
        return encode_png(self.canvas)


def encode_png(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's pixels as PNG, compressed lightly: zlib's default level costs a redraw about
    40 ms more for a few kB less."""
    buffer = io.BytesIO()
    PIL.Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).save(
        buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _diagram_title(run: NetworkRuns) -> str:
    """'IMP level 8\n(16.8% dense) · pooled over 3 seed(s)': the density on the second line."""
    name, _, density = run.label.partition(" (")
    head = f"{name}\n({density}" if density else name
    return f"{head} · pooled over {len(run.seeds)} seed(s)"


def _offsets(n: int) -> np.ndarray:
    """Where a network's n seeds sit around its position, so that equal values stay apart."""
    return np.linspace(-0.12, 0.12, n) if n > 1 else np.zeros(1)


def comparison_title(target: str, arm: str, n_shot: int) -> str:
    return f"{target} · {arm} · {shot_label(n_shot)}"


def compare_panel(ledger: pd.DataFrame | StudyIndex, target: str, arm: str, n_shot: int, network_a: str = DENSE,
                  network_b: str | None = None, metric: str = "ece", seed: int | None = None) -> Figure:
    """Accuracy and `metric` (default ECE; every seed, mean, 95% interval) beside both reliability
    diagrams (pooled over seeds), drawn once.

    Many parameters because each explorer control selects one."""
    runs = comparison(ledger, target, arm, n_shot, network_a, network_b, metric)
    return CompareFigure().show(runs, comparison_title(target, arm, n_shot), seed)
