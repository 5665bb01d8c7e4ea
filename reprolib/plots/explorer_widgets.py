"""The explorer's controls (ipywidgets), for notebooks/11_explorer.py in JupyterLab.

`open_study(profile)` reads a profile's ledger, or says in one line what to run when it has
none (no traceback: the profile picker stays usable). `explorer_widgets(study)` builds the
controls (profile, target, arm, shots, network A, network B, the metric beside accuracy: the
registered ones the ledger holds, one run's details), a numbers
line, a busy sign and the figure, and redraws on every change: the busy sign shows while
drawing and then the time the redraw took. The figure is rendered here to PNG once per
redraw (no pyplot state), so what the time measures is what the user waits for.
"""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from reprolib import paths
from reprolib.config import Profile, load_profile, profile_names
from reprolib.errors import ReprolibError
from reprolib.study.ledger import load_ledger
from reprolib.plots.explorer import DENSE, compare_panel, compare_summary, explorer_choices, metric_choices
from reprolib.plots.explorer_run import explorer_panel

BUSY = "⏳ redrawing…"
PICKED = ("target", "arm", "n_shot", "a", "b", "metric")   # the controls a redraw reads


@dataclass
class Study:
    """A profile, its finished runs (None without results) and the line that says which."""

    profile: Profile
    ledger: pd.DataFrame | None
    message: str


def open_study(profile: Profile | str) -> Study:
    """The profile's ledger, or None and a line saying what to run to make it."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    path = paths.ledger_file(profile.path("artifacts"))
    todo = f"run `make figures PROFILE={profile.profile}` (it trains this study), then rerun this notebook"
    if not path.exists():
        return Study(profile, None, f"{profile.profile}: no results yet ({path.name} missing); {todo}")
    ledger = load_ledger(profile.path("artifacts"))
    if ledger.empty:
        return Study(profile, None, f"{profile.profile}: its ledger holds no finished run; {todo}")
    return Study(profile, ledger, f"{profile.profile}: {len(ledger)} finished runs")


def profile_options() -> list[tuple[str, str]]:
    """(label, name) of every profile (built-in or a user's registered file), those without results marked."""
    out = []
    for name in sorted(profile_names()):
        has = paths.ledger_file(load_profile(name).path("artifacts")).exists()
        out.append((name if has else f"{name} (no results)", name))
    return out


def sparsest(choices: dict[str, list]) -> str:
    """The network the explorer opens on beside dense: the sparsest of the first sparse family in
    the picker (IMP, else one-shot, else baselines, else imported)."""
    keys = [key for _, key in choices["network"]]
    sparse = [k for k in keys if k != DENSE]
    if not sparse:
        return keys[0]
    family = sparse[0].split(":")[0]
    return [k for k in sparse if k.split(":")[0] == family][-1]


def render(fig) -> bytes:
    """The figure as PNG bytes (what the widget shows)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def draw(study: Study, values: dict[str, Any], details: bool) -> tuple[str, list[bytes]]:
    """The numbers line and the PNGs for the controls' values (a one-line error as the line)."""
    ledger = study.ledger
    try:
        chosen = [values[k] for k in ("target", "arm", "n_shot", "a", "b", "metric")]
        line = compare_summary(ledger, *chosen)
        pictures = [render(compare_panel(ledger, *chosen))]
        if details:
            kind, _, level = values["b"].partition(":")
            if kind != "imported":
                pictures.append(render(explorer_panel(ledger, study.profile.path("artifacts"), values["target"],
                                                      values["arm"], int(level), values["n_shot"], kind=kind,
                                                      source=study.profile.source)))
    except ReprolibError as err:
        return str(err), []
    return line, pictures


def explorer_widgets(study: Study):
    """The explorer: controls, numbers, busy sign and figure, each control wired to the redraw.

    Long because it is one widget tree and its two callbacks (redraw, change of profile)."""
    import ipywidgets as widgets

    layout = widgets.Layout(width="420px")
    controls = {
        "profile": widgets.Dropdown(options=profile_options(), value=study.profile.profile, description="profile"),
        "target": widgets.Dropdown(description="target"),
        "arm": widgets.Dropdown(description="arm"),
        "n_shot": widgets.Dropdown(description="shots"),
        "a": widgets.Dropdown(description="network A", layout=layout),
        "b": widgets.SelectionSlider(options=[("-", "")], description="network B", continuous_update=False,
                                     layout=widgets.Layout(width="640px")),
        "metric": widgets.Dropdown(description="metric"),
        "details": widgets.Checkbox(value=False, description="one run of B: prompt and label map"),
    }
    numbers, busy = widgets.HTML(), widgets.Label()
    pictures = widgets.VBox()
    numbers.add_class("reprolib-numbers")   # stable handles for the browser test
    busy.add_class("reprolib-busy")
    pictures.add_class("reprolib-figures")
    state = {"study": study, "hold": False}

    def redraw(_=None) -> None:
        current = state["study"]
        if state["hold"] or current.ledger is None:
            return
        busy.value = BUSY
        started = time.perf_counter()
        values = {k: controls[k].value for k in PICKED}
        line, pngs = draw(current, values, controls["details"].value)
        numbers.value = html.escape(line)
        pictures.children = [widgets.Image(value=png, format="png") for png in pngs]
        busy.value = f"drawn in {time.perf_counter() - started:.2f} s"

    def offer(current: Study) -> None:
        """Set every control's options to the study's (no redraw while doing so), then draw once."""
        state["study"], state["hold"] = current, True
        try:
            for key in PICKED:
                controls[key].disabled = current.ledger is None
            if current.ledger is None:
                numbers.value, pictures.children, busy.value = html.escape(current.message), [], ""
                return
            choices = {**explorer_choices(current.ledger), "metric": metric_choices(current.ledger)}
            for key in ("target", "arm", "metric"):
                before = controls[key].value
                controls[key].options = choices[key]
                values = [c[1] if isinstance(c, tuple) else c for c in choices[key]]
                controls[key].value = before if before in values else values[0]
            controls["n_shot"].options = [("full data" if n < 0 else f"{n}-shot", n) for n in choices["n_shot"]]
            controls["n_shot"].value = choices["n_shot"][-1]
            controls["a"].options = choices["network"]
            keys = [key for _, key in choices["network"]]
            controls["a"].value = DENSE if DENSE in keys else keys[0]
            controls["b"].options = choices["network"]
            controls["b"].value = sparsest(choices)
        finally:
            state["hold"] = False
        redraw()

    controls["profile"].observe(lambda change: offer(open_study(change["new"])), names="value")
    for key in (*PICKED, "details"):
        controls[key].observe(redraw, names="value")
    offer(study)
    rows = [widgets.HBox([controls["profile"], controls["target"], controls["arm"], controls["n_shot"]]),
            widgets.HBox([controls["a"], controls["b"], controls["metric"]]), widgets.HBox([controls["details"], busy]),
            numbers, pictures]
    box = widgets.VBox(rows)
    box.controls, box.numbers, box.busy, box.pictures = controls, numbers, busy, pictures   # for tests
    return box
