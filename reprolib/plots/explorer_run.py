"""One run of the explorer: numbers, reliability diagram, learned prompt, label map.

`run_panel` draws a ledger row (`explorer_panel` selects it by target, arm, network, shots and
seed); class names come from the data registry, or, for a pretrained backbone's source
(ImageNet), from the category names torchvision ships with its weights.

It reads the ledger row (numbers, bins, the label map's indices) and the run's learned state
through one function, `learned_state(study, run_id)`. `RunFigure` lays the panel out once and
updates it in place, as the explorer redraws it for every run picked. A checkout whose
results were shipped without the runs' learned state says so in the prompt's panel.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.study.ledger import label_map, reliability
from reprolib.plots.calibration import ReliabilityDiagram, bin_edges
from reprolib.plots.common import arm_label, network_name, shot_label
from reprolib.plots.explorer_figure import DPI, Blitted
from reprolib.transfer import registry as method_registry


def select_run(ledger: pd.DataFrame, target: str, arm: str, level: int, n_shot: int,
               kind: str = "imp", seed: int | None = None) -> pd.Series:
    """The ledger row of one run (lowest seed unless given); a one-line error names what exists."""
    rows = ledger[(ledger["target"] == target) & (ledger["arm"] == arm) & (ledger["ticket_kind"] == kind)
                  & (ledger["level"] == level) & (ledger["n_shot"] == n_shot)]
    if seed is not None:
        rows = rows[rows["seed"] == seed]
    if rows.empty:
        have = sorted({(t, a, int(lv), int(n)) for t, a, lv, n in
                       ledger[["target", "arm", "level", "n_shot"]].itertuples(index=False)})[:8]
        raise ReprolibError(f"no run for target {target!r} arm {arm!r} {kind} level {level} n_shot {n_shot}; "
                            f"valid choices include: {have}")
    return rows.sort_values("seed").iloc[0]


def learned_state(study: str | Path, run_id: str) -> dict[str, np.ndarray] | None:
    """The learned state of one run of a study, or None when this checkout does not hold it.

    `study` is the study's artifacts folder (`Profile.path("artifacts")`). The arrays are keyed
    as the transfer saves them: `prompt.theta` (padding prompt), `prompt.delta` (watermark and SMM
    prompts), `head.weight` (LP), `label_map` (prompt methods: the source class of each target
    class). The run's own `<artifacts>/runs/<id>.npz` where the study was trained here, else what
    the study's shipped scores archive holds (`reprolib.scores.archive.learned_arrays`: the prompt
    picture and label map of the lowest seed of each cell). None, not an empty dict, means "not
    shipped": neither holds the run's state."""
    path = paths.run_state_file(paths.runs_dir(study), run_id)
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    from reprolib.scores import archive   # only when a run's state is drawn from the shipped archive

    return archive.learned_arrays(study, run_id) or None


def _picture_note(method: str) -> str:
    """What the method's prompt kind adds to the caption of its learned delta (SMM: a per-image mask)."""
    from reprolib.prompts import PROMPTS, get_kind   # torch: only when a run's prompt is drawn

    return get_kind(method).picture_note if method in PROMPTS else ""


def prompt_picture(arrays: dict[str, np.ndarray], method: str, prompt_size: float | None) -> tuple[np.ndarray, str] | None:
    """(H, W[, 3]) image in [0, 1] of the learned prompt and a caption, or None for LP."""
    if "prompt.theta" in arrays:   # padding prompt: sigmoid(theta) on the frame around the image
        theta = arrays["prompt.theta"]
        image = 1.0 / (1.0 + np.exp(-theta))
        if prompt_size and not pd.isna(prompt_size):
            from reprolib.prompts.padding import pad_offsets

            before, _ = pad_offsets(int(prompt_size), theta.shape[-1])
            image[:, before:before + int(prompt_size), before:before + int(prompt_size)] = 0.0
        caption = "sigmoid(theta) on the frame (image area black)"
    elif "prompt.delta" in arrays:  # watermark / SMM: an additive delta in normalised units
        delta = arrays["prompt.delta"]
        span = float(np.abs(delta).max()) or 1.0
        image = 0.5 + 0.5 * delta / span
        caption = "delta (grey = 0, scaled to its max |value|)" + _picture_note(method)
    else:
        return None
    image = np.clip(image, 0.0, 1.0)
    return (image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))), caption


@functools.lru_cache(maxsize=1)
def _imagenet_categories() -> list[str]:
    """The category names torchvision ships with its ImageNet weights (`torchvision.models._meta`),
    read from that file's source: importing torchvision would cost the first redraw about 2 s."""
    import ast
    import importlib.util

    package = importlib.util.find_spec("torchvision")
    source = Path(package.submodule_search_locations[0]) / "models" / "_meta.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_IMAGENET_CATEGORIES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ReprolibError(f"no _IMAGENET_CATEGORIES in {source}; valid torchvision versions define it there")


# Sources that are no dataset of the registry (a pretrained backbone's upstream): where their names are.
SOURCE_CLASS_NAMES = {"imagenet": _imagenet_categories}


def class_names(dataset: str | None, count: int) -> list[str]:
    """Class names from the data registry (or SOURCE_CLASS_NAMES), else indices."""
    try:
        from reprolib.data import info

        names = list(info(dataset).class_names) if dataset not in SOURCE_CLASS_NAMES \
            else SOURCE_CLASS_NAMES[dataset]()
        if len(names) >= count:
            return names
    except Exception:   # unknown source: show indices
        pass
    return [str(i) for i in range(count)]


LABEL_MAP_LINES = 12   # classes listed; a larger map ends with how many more it has


def label_map_lines(mapping: list[int], target: str, source: str | None) -> list[str]:
    """'<target class> -> <source class> (#index)' per target class, at most LABEL_MAP_LINES."""
    targets = class_names(target, len(mapping))
    sources = class_names(source, max(mapping) + 1)
    lines = [f"{targets[t]} -> {sources[s]} (#{s})" for t, s in enumerate(mapping)]
    if len(lines) > LABEL_MAP_LINES:
        lines = lines[:LABEL_MAP_LINES - 1] + [f"... and {len(lines) - LABEL_MAP_LINES + 1} more classes"]
    return lines


def _numbers(run: pd.Series) -> str:
    lines = [f"{run['target']} · {run['arm']}", network_name(str(run["ticket_kind"]), int(run["level"]), run["density"]),
             f"{shot_label(int(run['n_shot']))} · seed {int(run['seed'])}", "",
             f"accuracy  {100 * run['accuracy']:.1f}%", f"ECE       {run['ece']:.3f}",
             f"MCE       {run['mce']:.3f}", f"NLL       {run['nll']:.3f}", f"Brier     {run['brier']:.3f}"]
    return "\n".join(lines)


NOT_SHIPPED = "learned prompt: not shipped\nwith this checkout's results\n(a retrained study has it)"


def _prompt_note(state: dict[str, np.ndarray] | None, run: pd.Series) -> str:
    """What the prompt's panel says when it has no picture: LP has no input prompt; else not shipped or not saved."""
    spec = method_registry.method_of_arm(str(run["method"]))
    if spec is not None and not spec.input_prompt:   # LP: a head on features
        return f"{arm_label(str(run['arm']))}:\nno prompt"
    return NOT_SHIPPED if state is None else "no prompt saved"


USUAL_BINS = 15


class RunFigure:
    """The one-run panel (numbers, reliability diagram, learned prompt, label map), laid out once:
    `show(run, study, source)` sets it to any run of a study (a ledger row, its artifacts folder)
    and `png` renders it. As the comparison figure (explorer_figure.CompareFigure), the explorer
    keeps one per session and renders only what a run changes over the pixels of what it does
    not (the reliability diagram's axes and ticks): a fixed grid, no layout solver."""

    def __init__(self):
        fig = Figure(figsize=(12, 3.3), dpi=DPI)
        self.blitted = Blitted(fig)
        self.figure, self.canvas = fig, self.blitted.canvas
        grid = fig.add_gridspec(1, 4, width_ratios=[0.9, 1, 1, 1.3], left=0.01, right=0.99, top=0.88, bottom=0.2,
                                wspace=0.3)
        self.ax_text, self.ax_rel, self.ax_prompt, self.ax_map = (fig.add_subplot(grid[0, k]) for k in range(4))
        self.ax_text.axis("off")
        self.ax_map.axis("off")
        self.numbers = self.ax_text.text(0.0, 1.0, "", va="top", family="monospace", fontsize=8.5)
        self.mapping = self.ax_map.text(0.0, 1.0, "", va="top", family="monospace", fontsize=7.5)
        self.map_note = self.ax_map.text(0.5, 0.5, "", ha="center", va="center", fontsize=9)
        self.prompt_note = self.ax_prompt.text(0.5, 0.5, "", ha="center", va="center", fontsize=9,
                                               transform=self.ax_prompt.transAxes)
        self.image = None
        # Made now for the ledger's usual bins (equal-width: scores.metrics.reliability_bins), so
        # that `png` can render the unchanging pixels before the first run is shown.
        self.diagram = ReliabilityDiagram(self.ax_rel, np.linspace(0.0, 1.0, USUAL_BINS + 1))

    def show(self, run: pd.Series, study: str | Path, source: str | None = None) -> Figure:
        """Set the panel to `run` (its learned state read by `learned_state`); returns the figure."""
        self.numbers.set_text(_numbers(run))
        self._reliability(reliability(run))
        state = learned_state(study, run["id"])
        self._prompt(state, run)
        mapping = label_map(run)
        if mapping is None and state is not None and "label_map" in state:
            mapping = [int(s) for s in state["label_map"].tolist()]
        self._label_map(mapping, str(run["target"]), source)
        return self.figure

    def _reliability(self, bins: dict[str, list] | None) -> None:
        self.ax_rel.set_visible(bool(bins))
        if not bins:
            return
        if not self.diagram.fits(bins):
            self.diagram.remove()
            self.diagram = ReliabilityDiagram(self.ax_rel, bin_edges(bins))
        self.diagram.show(bins, "reliability (this run)")
        self.ax_rel.title.set_fontsize(9)

    def _prompt(self, state: dict[str, np.ndarray] | None, run: pd.Series) -> None:
        ax = self.ax_prompt
        if self.image is not None:
            self.image.remove()
            self.image = None
        picture = None if state is None else prompt_picture(state, str(run["method"]), run.get("prompt_size"))
        if picture is None:
            ax.axis("off")
            ax.set(title="", xlabel="")
            self.prompt_note.set_text(_prompt_note(state, run))
            return
        image, caption = picture
        ax.axis("on")
        self.prompt_note.set_text("")
        self.image = ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        ax.set(xticks=[], yticks=[])
        ax.set_title("learned prompt", fontsize=9)
        ax.set_xlabel("\n".join(textwrap.wrap(caption, 38)), fontsize=7)

    def _label_map(self, mapping: list[int] | None, target: str, source: str | None) -> None:
        """The label map, one line per target class: target class -> the source class it reads."""
        self.ax_map.set_title(f"label map: {target} class -> {source or 'source'} class", fontsize=9)
        self.mapping.set_text("\n".join(label_map_lines(mapping, target, source)) if mapping else "")
        self.map_note.set_text("" if mapping else "linear probe: no label map\n(a new linear head)")

    def _changing(self) -> list:
        """The artists a run changes, in drawing order: the numbers', prompt's and label map's axes
        whole, and the diagram's bars, diagonal, frame and title."""
        out = [self.ax_text]
        if self.ax_rel.get_visible():
            out += [*self.diagram.accuracy, self.diagram.diagonal, *self.ax_rel.spines.values(), *self.diagram.over,
                    *self.diagram.under, self.ax_rel.title]
        return out + [self.ax_prompt, self.ax_map]

    def png(self) -> bytes:
        """The panel as PNG bytes at DPI: the unchanging part rendered the first time (and again
        when the diagram is shown, hidden or made anew), the rest over its pixels."""
        return self.blitted.png(self._changing(), (self.ax_rel.get_visible(), id(self.diagram)))


def run_panel(run: pd.Series, study: str | Path, source: str | None = None) -> Figure:
    """Four panels for one run (a ledger row of `study`, its artifacts folder): numbers,
    reliability diagram, learned prompt (`learned_state`), label map (the ledger's, else the
    state's); `RunFigure` shown once."""
    return RunFigure().show(run, study, source)


def explorer_panel(ledger: pd.DataFrame, artifacts: str | Path, target: str, arm: str, level: int,
                   n_shot: int, kind: str = "imp", seed: int | None = None, source: str | None = None) -> Figure:
    """`run_panel` of the run selected by target, arm, network (kind, level), shots and seed (lowest by default).

    Many parameters because each widget of the explorer (target, arm, level, shots, kind,
    seed) selects the run, and the notebook passes them by name.
    """
    return run_panel(select_run(ledger, target, arm, level, n_shot, kind=kind, seed=seed), artifacts, source)
