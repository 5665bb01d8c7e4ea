"""The sparsity explorer: a ticket beside the dense network, and one run's prompt and label map.

`compare_panel` draws the chosen ticket and the dense network of the same target, arm, shots
and seed on the same axes (reliability diagrams with bin shares), and accuracy and ECE across
every level with the chosen one marked; `compare_summary` is the same comparison in one line.
`explorer_panel` shows one run: numbers, reliability diagram, learned prompt, label map.

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
from reprolib.ledger import label_map, reliability
from reprolib.plots.calibration import add_reliability_legend, draw_reliability, reliability_axes
from reprolib.plots.common import arm_color, shot_label


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
        caption = "delta (grey = 0, scaled to its max |value|)" + (", times a per-image mask" if method == "smm" else "")
    else:
        return None
    image = np.clip(image, 0.0, 1.0)
    return (image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))), caption


def class_names(dataset: str | None, count: int) -> list[str]:
    """Class names from the data registry, or indices when the dataset is unknown there."""
    try:
        from reprolib.data import info

        names = list(info(dataset).class_names)
        if len(names) >= count:
            return names
    except Exception:   # unknown source (e.g. imagenet weights without a dataset): show indices
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
    lines = [f"{target} · {arm}", f"{kind} level {level} ({100 * float(run['density']):.1f}% dense)",
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


def _levels(ledger: pd.DataFrame, target: str, arm: str, n_shot: int, kind: str, seed: int) -> pd.DataFrame:
    """One row per level of `kind` (plus dense = level 0) for this target, arm, shots and seed."""
    rows = ledger[(ledger["target"] == target) & (ledger["arm"] == arm) & (ledger["n_shot"] == n_shot)
                  & (ledger["seed"] == seed) & (ledger["ticket_kind"].isin([kind, "imp"]))]
    rows = rows[(rows["ticket_kind"] == kind) | (rows["level"] == 0)]
    return rows.sort_values("level").drop_duplicates("level")


def compare_summary(ledger: pd.DataFrame, target: str, arm: str, level: int, n_shot: int,
                    kind: str = "imp", seed: int | None = None) -> str:
    """'<kind> level L (d% dense): accuracy a% (dense b%), ECE e (dense f)' for the chosen run.

    Many parameters because each explorer widget selects one of them.
    """
    run = select_run(ledger, target, arm, level, n_shot, kind=kind, seed=seed)
    dense = select_run(ledger, target, arm, 0, n_shot, kind="imp", seed=int(run["seed"]))
    return (f"{target} · {arm} · {shot_label(n_shot)} · seed {int(run['seed'])} · {kind} level {level} "
            f"({100 * float(run['density']):.1f}% dense): accuracy {100 * run['accuracy']:.1f}% "
            f"(dense {100 * dense['accuracy']:.1f}%), ECE {run['ece']:.3f} (dense {dense['ece']:.3f})")


def _across_levels(ax: Axes, rows: pd.DataFrame, metric: str, level: int, arm: str) -> None:
    scale = 100.0 if metric == "accuracy" else 1.0
    ax.plot(rows["level"], scale * rows[metric], marker="o", color=arm_color(arm), label=arm)
    chosen = rows[rows["level"] == level]
    ax.scatter(chosen["level"], scale * chosen[metric], s=160, facecolors="none", edgecolors="black",
               linewidths=2, zorder=3, label=f"chosen: level {level}")
    ax.set_xticks(rows["level"], [f"{int(lv)}\n{100 * d:.0f}%" for lv, d in zip(rows["level"], rows["density"])])
    ax.set(xlabel="level (density)", ylabel="accuracy (%)" if metric == "accuracy" else "ECE",
           title=f"{'accuracy' if metric == 'accuracy' else 'ECE'} across levels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def compare_panel(ledger: pd.DataFrame, target: str, arm: str, level: int, n_shot: int,
                  kind: str = "imp", seed: int | None = None) -> Figure:
    """Dense and the chosen ticket on the same reliability axes, accuracy and ECE across levels.

    Many parameters because each explorer widget selects one of them.
    """
    run = select_run(ledger, target, arm, level, n_shot, kind=kind, seed=seed)
    seed = int(run["seed"])
    dense = select_run(ledger, target, arm, 0, n_shot, kind="imp", seed=seed)
    fig = Figure(figsize=(13, 5.4), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
    diagrams, counts = reliability_axes(left, 2)
    for ax, counts_ax, row, name in zip(diagrams, counts, (dense, run), ("dense", f"{kind} level {level}")):
        draw_reliability(ax, reliability(row), f"{name} ({100 * float(row['density']):.1f}% dense)\n"
                         f"acc {100 * row['accuracy']:.1f}%  ECE {row['ece']:.3f}", counts_ax)
    add_reliability_legend(left)
    rows = _levels(ledger, target, arm, n_shot, kind, seed)
    for ax, metric in zip(right.subplots(2, 1), ("accuracy", "ece")):
        _across_levels(ax, rows, metric, level, arm)
    fig.suptitle(f"{target} · {arm} · {shot_label(n_shot)} · seed {seed}", fontsize=10)
    return fig
