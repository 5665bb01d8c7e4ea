"""One run of the explorer: numbers, reliability diagram, learned prompt, label map.

`run_panel` draws a ledger row (`explorer_panel` selects it by target, arm, network, shots and
seed); class names come from the data registry, or, for a pretrained backbone's source
(ImageNet), from the category names torchvision ships with its weights.

It reads the ledger row (numbers, bins, the label map's indices) and the run's learned state
through one function, `learned_state(study, run_id)`, so it draws instantly. A checkout whose
results were shipped without the runs' learned state says so in the prompt's panel.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.study.ledger import label_map, reliability
from reprolib.plots.calibration import draw_reliability
from reprolib.plots.common import arm_label, network_name, shot_label
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
    class). None, not an empty dict, means "not shipped": the study's results came without the
    run's state (here: without its `<artifacts>/runs/<id>.npz`)."""
    path = paths.run_state_file(paths.runs_dir(study), run_id)
    if not path.exists():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


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


def draw_label_map(ax: Axes, mapping: list[int] | None, target: str, source: str | None) -> None:
    """The label map, one line per target class: target class -> the source class it reads."""
    ax.axis("off")
    ax.set_title(f"label map: {target} class -> {source or 'source'} class", fontsize=9)
    if not mapping:
        ax.text(0.5, 0.5, "linear probe: no label map\n(a new linear head)", ha="center", va="center", fontsize=9)
        return
    ax.text(0.0, 1.0, "\n".join(label_map_lines(mapping, target, source)), va="top", family="monospace",
            fontsize=7.5)


def _numbers(run: pd.Series) -> str:
    lines = [f"{run['target']} · {run['arm']}", network_name(str(run["ticket_kind"]), int(run["level"]), run["density"]),
             f"{shot_label(int(run['n_shot']))} · seed {int(run['seed'])}", "",
             f"accuracy  {100 * run['accuracy']:.1f}%", f"ECE       {run['ece']:.3f}",
             f"MCE       {run['mce']:.3f}", f"NLL       {run['nll']:.3f}", f"Brier     {run['brier']:.3f}"]
    return "\n".join(lines)


NOT_SHIPPED = "learned prompt: not shipped\nwith this checkout's results\n(a retrained study has it)"


def _draw_prompt(ax: Axes, state: dict[str, np.ndarray] | None, run: pd.Series) -> None:
    picture = None if state is None else prompt_picture(state, str(run["method"]), run.get("prompt_size"))
    if picture is None:
        ax.axis("off")
        spec = method_registry.method_of_arm(str(run["method"]))
        no_input_prompt = spec is not None and not spec.input_prompt   # LP: a head on features
        ax.text(0.5, 0.5, f"{arm_label(str(run['arm']))}:\nno prompt" if no_input_prompt
                else NOT_SHIPPED if state is None else "no prompt saved",
                ha="center", va="center", fontsize=9)
        return
    image, caption = picture
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[])
    ax.set_title("learned prompt", fontsize=9)
    ax.set_xlabel("\n".join(textwrap.wrap(caption, 38)), fontsize=7)


def run_panel(run: pd.Series, study: str | Path, source: str | None = None) -> Figure:
    """Four panels for one run (a ledger row of `study`, its artifacts folder): numbers,
    reliability diagram, learned prompt (`learned_state`), label map (the ledger's, else the
    state's). A fixed grid, not a layout solver: the explorer draws this on every change."""
    fig = Figure(figsize=(12, 3.3), dpi=100)
    grid = fig.add_gridspec(1, 4, width_ratios=[0.9, 1, 1, 1.3], left=0.01, right=0.99, top=0.88, bottom=0.2,
                            wspace=0.3)
    ax_text, ax_rel, ax_prompt, ax_map = (fig.add_subplot(grid[0, k]) for k in range(4))
    ax_text.axis("off")
    ax_text.text(0.0, 1.0, _numbers(run), va="top", family="monospace", fontsize=8.5)
    bins = reliability(run)
    if bins:
        draw_reliability(ax_rel, bins, "reliability (this run)")
        ax_rel.title.set_fontsize(9)
    else:
        ax_rel.axis("off")
    state = learned_state(study, run["id"])
    _draw_prompt(ax_prompt, state, run)
    mapping = label_map(run)
    if mapping is None and state is not None and "label_map" in state:
        mapping = [int(s) for s in state["label_map"].tolist()]
    draw_label_map(ax_map, mapping, str(run["target"]), source)
    return fig


def explorer_panel(ledger: pd.DataFrame, artifacts: str | Path, target: str, arm: str, level: int,
                   n_shot: int, kind: str = "imp", seed: int | None = None, source: str | None = None) -> Figure:
    """`run_panel` of the run selected by target, arm, network (kind, level), shots and seed (lowest by default).

    Many parameters because each widget of the explorer (target, arm, level, shots, kind,
    seed) selects the run, and the notebook passes them by name.
    """
    return run_panel(select_run(ledger, target, arm, level, n_shot, kind=kind, seed=seed), artifacts, source)
