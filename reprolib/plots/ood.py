"""OOD-detection figure: AUROC of telling a target's test images from OOD images, against density.

One panel per target (rows) and OOD column (columns: which OOD images x which score), titled
in words; one line per arm over the study's networks (IMP, or its one-shot networks), the
0.5 chance line drawn, the legend outside the panels. Targets are never pooled: their OOD
sets differ (each target's partners are the other datasets).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from reprolib.plots.common import REFERENCE, density_lines, marker_note, require, shot_label, trend_rows

OOD_SETS = {"datasets": "other datasets", "noise": "uniform noise"}
OOD_SCORES = {"msp": "max softmax probability", "energy": "negative energy"}


def ood_columns(ledger: pd.DataFrame) -> list[str]:
    """Ledger columns holding OOD-detection AUROC values."""
    return sorted(c for c in ledger.columns if c.startswith("ood_") and "auroc" in c and ledger[c].notna().any())


def _partners(target: str) -> str:
    """', '.join of the target's OOD partner datasets, or '' when the registry does not know it."""
    try:
        from reprolib.data import info

        return ", ".join(info(target).ood_partners)
    except Exception:   # a target outside the registry: the title names the set without its members
        return ""


def ood_title(target: str, column: str) -> str:
    """'digits vs other datasets (fashion_mnist, glyphs)\\nscore: max softmax probability' for
    'ood_datasets_msp_auroc'; an unknown column keeps its own name."""
    parts = column.removeprefix("ood_").removesuffix("_auroc").split("_")
    if len(parts) != 2 or parts[0] not in OOD_SETS or parts[1] not in OOD_SCORES:
        return f"{target}: {column}"
    members = _partners(target) if parts[0] == "datasets" else ""
    return f"{target} vs {OOD_SETS[parts[0]]}" + (f" ({members})" if members else "") + \
        f"\nscore: {OOD_SCORES[parts[1]]}"


def ood_vs_sparsity(ledger: pd.DataFrame, n_shot: int = -1) -> Figure | None:
    """OOD-detection AUROC vs density, rows = targets, columns = OOD set x score, one line per
    arm; None when the ledger has no OOD metric for runs at `n_shot`."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "density", "n_shot"], "ood_vs_sparsity")
    rows = trend_rows(ledger[ledger["n_shot"] == n_shot])
    columns = ood_columns(rows)
    if rows.empty or not columns:
        return None
    targets = sorted(rows["target"].unique())
    fig = Figure(figsize=(3.6 * len(columns) + 1.6, 3.0 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), len(columns), sharey=True, squeeze=False)
    for i, target in enumerate(targets):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            here = rows[(rows["target"] == target) & rows[column].notna()]
            ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)", gid=REFERENCE)
            if here.empty:   # this target has no such OOD metric: no panel rather than an empty one
                ax.set_visible(False)
                continue
            density_lines(ax, here, column)
            ax.set_title(ood_title(target, column), fontsize=8)
            ax.set_ylim(0, 1.02)
            if i == len(targets) - 1:
                ax.set_xlabel("density (%) - sparser to the right")
        axes[i, 0].set_ylabel("AUROC (ID = positive)")
    handles = {}
    for ax in axes.flat:   # every arm once, from whichever panel drew it
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8,
               title=f"arm ({shot_label(n_shot)}; {marker_note(rows)})", title_fontsize=8)
    return fig
