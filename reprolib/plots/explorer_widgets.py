"""The explorer's controls (ipywidgets), for notebooks/11_explorer.py in JupyterLab.

`open_study(profile)` reads a profile's ledger once and indexes it (reprolib.plots.explorer.
StudyIndex), or says in one line what to run when it has none (no traceback: the study picker
stays usable; the command depends on where the profile trains, reprolib.notebooks.studies).
`explorer_widgets(study)` builds the controls (study, target, arm, shots, network A, network B,
the metric beside accuracy, one run's details and its seed), a numbers line, a busy sign and
the figures, and redraws on every change: the busy sign shows while drawing and then the time
the redraw took. The comparison figure and the one-run panel are each made once and updated in
place (reprolib.plots.explorer_figure.CompareFigure, reprolib.plots.explorer_run.RunFigure); the
one-run panel is drawn only when the run it shows changes. What redraws would otherwise pay for
at random (the scores archive's manifest, the pooled bins, a full garbage collection) is done in
the background when a study opens (`warm`). Picking a study sets $REPROLIB_PROFILE in the
kernel, so running the notebook again opens that study (its cells are never edited for it).
"""

from __future__ import annotations

import gc
import html
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from reprolib import paths
from reprolib.config import Profile, load_profile, profile_names
from reprolib.errors import ReprolibError
from reprolib.notebooks.studies import PROFILE_ENV, results_command
from reprolib.plots.explorer import DENSE, StudyIndex, comparison, compare_summary, explorer_choices, metric_choices
from reprolib.plots.explorer_figure import CompareFigure, comparison_title
from reprolib.plots.explorer_run import RunFigure
from reprolib.scores import archive
from reprolib.study.ledger import load_ledger

BUSY = "⏳ redrawing…"
PICKED = ("target", "arm", "n_shot", "a", "b", "metric")   # the controls a comparison reads


@dataclass
class Study:
    """A profile, its finished runs (None without results), their index and the line that says which;
    `warming`: the thread that reads, in the background, what the study's first redraws would otherwise
    pay for once (`warm`)."""

    profile: Profile
    ledger: pd.DataFrame | None
    message: str
    index: StudyIndex | None = None
    warming: threading.Thread | None = None

    def warmed(self) -> None:
        """Wait until the background reading is done (before the one-run panel reads the archive:
        it must not be read twice at once)."""
        if self.warming is not None:
            self.warming.join()


def warm(study: Study) -> None:
    """Do what a study's redraws would otherwise pay for at random: read the scores archive's manifest
    (about 0.5 s of CPU, once: the one-run panel's learned prompt in a clone) and every cell's
    pooled reliability bins, then collect the garbage (a study picked before this one) and freeze
    what is alive (gc.freeze). Python's full collections walk every live object, about 0.2 s of
    CPU in this kernel, and one lands in whichever redraw crosses its allocation threshold;
    frozen objects are left out of them. Unfrozen again at the next study, so nothing the
    kernel drops stays uncollected."""
    path = archive.archive_path(study.profile.path("artifacts"))
    if path.is_file():
        archive.opened(path)
    study.index.pool_all()
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def open_study(profile: Profile | str) -> Study:
    """The profile's ledger, indexed, or None and a line saying what to run to make it; `warm` starts
    in a background thread (a user's first click comes later than its half second)."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    path = paths.ledger_file(profile.path("artifacts"))
    todo = f"run {results_command(profile)}, then rerun this notebook"
    if not path.exists():
        return Study(profile, None, f"{profile.profile}: no results yet ({path.name} missing); {todo}")
    ledger = load_ledger(profile.path("artifacts"))
    if ledger.empty:
        return Study(profile, None, f"{profile.profile}: its ledger holds no finished run; {todo}")
    study = Study(profile, ledger, f"{profile.profile}: {len(ledger)} finished runs", StudyIndex(ledger))
    study.warming = threading.Thread(target=warm, args=(study,), name=f"warm {profile.profile}", daemon=True)
    study.warming.start()
    return study


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


class Drawing:
    """What a redraw needs between changes: the comparison figure and the one-run panel, each made
    once and updated in place, and the PNG of the run last shown (drawn again only for another run)."""

    def __init__(self):
        self.figure, self.run_figure = CompareFigure(), RunFigure()
        self.run_figure.png()   # its unchanging pixels now, not in the redraw that first shows a run
        self.run_key, self.run_png = None, b""

    def draw(self, study: Study, values: dict[str, Any], details: bool) -> tuple[str, list[bytes]]:
        """The numbers line and the PNGs for the controls' values (a one-line error as the line)."""
        chosen = [values[k] for k in PICKED]
        try:
            runs = comparison(study.index, *chosen)
        except ReprolibError as err:
            return str(err), []
        seed = values.get("seed")
        self.figure.show(runs, comparison_title(*chosen[:3]), seed)
        pictures = [self.figure.png()]
        if details and seed in runs[1].seeds:
            run_id = runs[1].ids[runs[1].seeds.index(seed)]
            key = (study.profile.profile, run_id)
            if key != self.run_key:
                study.warmed()
                row = study.ledger.loc[study.ledger["id"] == run_id].iloc[0]
                self.run_figure.show(row, study.profile.path("artifacts"), study.profile.source)
                self.run_key, self.run_png = key, self.run_figure.png()
            pictures.append(self.run_png)
        return compare_summary(study.index, *chosen), pictures


def _controls() -> dict[str, Any]:
    """The explorer's widgets, unwired; labels sized to show in full."""
    import ipywidgets as widgets

    wide = {"style": {"description_width": "initial"}}
    return {
        "profile": widgets.Dropdown(options=profile_options(), description="study", **wide),
        "target": widgets.Dropdown(description="target", **wide),
        "arm": widgets.Dropdown(description="arm", **wide),
        "n_shot": widgets.Dropdown(description="shots", **wide),
        "a": widgets.Dropdown(description="network A", layout=widgets.Layout(width="440px"), **wide),
        "b": widgets.SelectionSlider(options=[("-", "")], description="network B", continuous_update=False,
                                     readout=False, layout=widgets.Layout(width="360px"), **wide),
        "metric": widgets.Dropdown(description="metric", **wide),
        "details": widgets.Checkbox(value=False, description="one run of B: its prompt and label map", indent=False,
                                    layout=widgets.Layout(width="auto")),
        "seed": widgets.Dropdown(description="seed", layout=widgets.Layout(width="140px"), **wide),
    }


def _offer(controls: dict, current: Study) -> None:
    """Set every control's options to the study's (the caller holds the redraw meanwhile)."""
    choices = {**explorer_choices(current.ledger), "metric": metric_choices(current.ledger)}
    for key in ("target", "arm", "metric"):
        before = controls[key].value
        controls[key].options = choices[key]
        values = [c[1] if isinstance(c, tuple) else c for c in choices[key]]
        controls[key].value = before if before in values else values[0]
    controls["n_shot"].options = _shot_options(choices["n_shot"])
    controls["n_shot"].value = choices["n_shot"][-1]
    keys = [key for _, key in choices["network"]]
    controls["a"].options = choices["network"]
    controls["a"].value = DENSE if DENSE in keys else keys[0]
    controls["b"].options = choices["network"]
    controls["b"].value = sparsest(choices)


def _shot_options(shots: list[int]) -> list[tuple[str, int]]:
    return [("full data" if n < 0 else f"{n}-shot", n) for n in shots]


def _shots(controls: dict, study: Study) -> None:
    """The shots picker offers what the chosen target and arm ran (keeping the shots picked when they ran it,
    else full data or the most shots): no picked cell is one without runs."""
    shots = study.index.shots(controls["target"].value, controls["arm"].value)
    if not shots:
        return
    before = controls["n_shot"].value
    controls["n_shot"].options = _shot_options(shots)
    controls["n_shot"].value = before if before in shots else shots[-1]


def _seeds(controls: dict, study: Study) -> None:
    """The seed picker offers network B's seeds in the chosen cell (keeping the seed picked when it has it)."""
    try:
        seeds = study.index.runs(*(controls[k].value for k in ("target", "arm", "n_shot", "b"))).seeds
    except ReprolibError:
        seeds = []
    before = controls["seed"].value
    controls["seed"].options = seeds
    controls["seed"].value = before if before in seeds else (seeds[0] if seeds else None)


def explorer_widgets(study: Study):
    """The explorer: controls, numbers, busy sign and figures, each control wired to the redraw.

    Long because it is one widget tree and its two callbacks (redraw, change of study)."""
    import ipywidgets as widgets

    controls = _controls()
    controls["profile"].value = study.profile.profile
    numbers, busy, b_name, pictures = widgets.HTML(), widgets.Label(), widgets.Label(), widgets.VBox()
    for widget, handle in ((numbers, "numbers"), (busy, "busy"), (pictures, "figures"), (b_name, "network-b")):
        widget.add_class(f"reprolib-{handle}")   # stable handles for the browser test
    state = {"study": study, "hold": False, "drawing": Drawing()}

    def redraw(_=None) -> None:
        current = state["study"]
        if state["hold"] or current.ledger is None:
            return
        busy.value = BUSY
        started = time.perf_counter()
        state["hold"] = True
        try:
            _shots(controls, current)
            _seeds(controls, current)
        finally:
            state["hold"] = False
        b_name.value = dict((key, label) for label, key in controls["b"].options).get(controls["b"].value, "")
        values = {**{k: controls[k].value for k in PICKED}, "seed": controls["seed"].value}
        line, pngs = state["drawing"].draw(current, values, controls["details"].value)
        numbers.value = html.escape(line)
        pictures.children = [widgets.Image(value=png, format="png") for png in pngs]
        busy.value = f"drawn in {time.perf_counter() - started:.2f} s"

    def offer(current: Study) -> None:
        """Show the study: its options in every control (no redraw while setting them), then draw once."""
        state["study"], state["hold"] = current, True
        os.environ[PROFILE_ENV] = current.profile.profile   # a rerun of the notebook opens this study
        try:
            for key in (*PICKED, "seed"):
                controls[key].disabled = current.ledger is None
            if current.ledger is None:
                numbers.value, pictures.children, busy.value, b_name.value = html.escape(current.message), [], "", ""
                return
            _offer(controls, current)
        finally:
            state["hold"] = False
        redraw()

    controls["profile"].observe(lambda change: offer(open_study(change["new"])), names="value")
    for key in (*PICKED, "details", "seed"):
        controls[key].observe(redraw, names="value")
    offer(study)
    rows = [widgets.HBox([controls["profile"], controls["target"], controls["arm"], controls["n_shot"]]),
            widgets.HBox([controls["a"], controls["b"], b_name]),
            widgets.HBox([controls["metric"], controls["details"], controls["seed"], busy]), numbers, pictures]
    box = widgets.VBox(rows)
    box.controls, box.numbers, box.busy, box.pictures, box.network_b = controls, numbers, busy, pictures, b_name
    return box
