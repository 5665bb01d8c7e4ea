"""One run of the explorer: numbers, reliability diagram, learned prompt, label map.

`explorer_panel` draws it; class names come from the data registry, or, for a pretrained
backbone's source (ImageNet), from the category names torchvision ships with its weights.

Reads only the ledger row and the run's `<artifacts>/runs/<id>.npz` (written by the transfer:
`prompt.theta` for the padding prompt, `prompt.delta` for watermark / SMM prompts,
`head.weight` for LP, `label_map` for prompt methods), so it draws instantly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.study.ledger import label_map, reliability
from reprolib.plots.calibration import draw_reliability
from reprolib.plots.common import network_name, shot_label


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


def load_arrays(artifacts: str | Path, run_id: str) -> dict[str, np.ndarray]:
    """The run's learned arrays (empty dict when the .npz is missing)."""
    path = paths.run_state_file(paths.runs_dir(artifacts), run_id)
    if not path.exists():
        return {}
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


def _imagenet_categories() -> list[str]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES   # the names torchvision's weights carry

    return list(_IMAGENET_CATEGORIES)


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


def draw_label_map(ax: Axes, mapping: list[int] | None, target: str, source: str | None) -> None:
    """The label map as a two-column table: target class -> selected source class."""
    ax.axis("off")
    if not mapping:
        ax.text(0.5, 0.5, "linear probe: no label map\n(a new linear head)", ha="center", va="center")
        return
    targets = class_names(target, len(mapping))
    sources = class_names(source, max(mapping) + 1)
    cells = [[targets[t], f"{sources[s]} (#{s})"] for t, s in enumerate(mapping)]
    table = ax.table(cellText=cells, colLabels=[f"{target} class", f"source class ({source})"], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    ax.set_title("label map")


def explorer_panel(ledger: pd.DataFrame, artifacts: str | Path, target: str, arm: str, level: int,
                   n_shot: int, kind: str = "imp", seed: int | None = None, source: str | None = None) -> Figure:
    """Four panels for one run: numbers, reliability diagram, learned prompt, label map.

    Many parameters because each widget of the explorer (target, arm, level, shots, kind,
    seed) selects the run, and the notebook passes them by name.
    """
    run = select_run(ledger, target, arm, level, n_shot, kind=kind, seed=seed)
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    ax_text, ax_rel, ax_prompt, ax_map = fig.subplots(1, 4, gridspec_kw={"width_ratios": [0.8, 1, 1, 1.2]})
    ax_text.axis("off")
    lines = [f"{target} · {arm}", network_name(kind, level, run["density"]),
             f"{shot_label(n_shot)} · seed {int(run['seed'])}", "",
             f"accuracy  {100 * run['accuracy']:.1f}%", f"ECE       {run['ece']:.3f}",
             f"MCE       {run['mce']:.3f}", f"NLL       {run['nll']:.3f}", f"Brier     {run['brier']:.3f}"]
    ax_text.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace", fontsize=9)
    bins = reliability(run)
    if bins:
        draw_reliability(ax_rel, bins, "reliability")
    else:
        ax_rel.axis("off")
    arrays = load_arrays(artifacts, run["id"])
    picture = prompt_picture(arrays, str(run["method"]), run.get("prompt_size"))
    if picture is None:
        ax_prompt.axis("off")
        ax_prompt.text(0.5, 0.5, "no learned prompt\n(linear probe or missing .npz)", ha="center", va="center")
    else:
        image, caption = picture
        ax_prompt.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        ax_prompt.set(xticks=[], yticks=[], title="learned prompt")
        ax_prompt.set_xlabel(caption, fontsize=7)
    mapping = label_map(run)
    if mapping is None and "label_map" in arrays:
        mapping = [int(s) for s in arrays["label_map"].tolist()]
    draw_label_map(ax_map, mapping, target, source)
    return fig
