"""The explorer: any two networks of a study over every seed, its controls, and a study without results."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.notebooks.studies import PROFILE_ENV
from reprolib.plots.explorer import compare_summary, comparison, explorer_choices, networks, pooled_reliability
from reprolib.plots.explorer_figure import compare_panel
from reprolib.study.stats import t_interval


def test_the_picker_offers_every_network_dense_first(synthetic_study) -> None:
    _, ledger = synthetic_study
    assert [key for _, key in networks(ledger)] == ["imp:0", "imp:2", "imp:4", "magnitude:4", "random:4"]
    labels = [label for label, _ in networks(ledger)]
    assert labels[0] == "dense" and labels[2] == "IMP level 4 (41.0% dense)"
    assert labels[3].startswith("magnitude baseline level 4")
    oneshot = ledger.assign(provenance=np.where(ledger["ticket_kind"] == "magnitude", "oneshot", ledger["provenance"]))
    oneshot = oneshot[(oneshot["ticket_kind"] == "magnitude") | (oneshot["level"] == 0)]
    assert [label for label, _ in networks(oneshot)] == ["dense", "one-shot magnitude level 4 (41.0% dense)"]
    choices = explorer_choices(ledger)
    assert choices["arm"][0] == "vp/ilm" and choices["n_shot"] == [5, -1]
    with pytest.raises(ReprolibError, match="no finished run; run the sweep"):
        explorer_choices(ledger.head(0))


def test_every_seed_is_a_point_with_the_mean_and_its_t_interval(synthetic_study) -> None:
    _, ledger = synthetic_study
    cell = ledger[(ledger["target"] == "glyphs") & (ledger["arm"] == "lp") & (ledger["n_shot"] == 5)]
    dense, ticket = comparison(ledger, "glyphs", "lp", 5, "imp:0", "random:4")
    expected = cell[cell["ticket_kind"] == "random"].sort_values("seed")
    assert ticket.seeds == [1, 2] and ticket.accuracy == pytest.approx(expected["accuracy"].tolist())
    interval = t_interval(expected["accuracy"])
    assert ticket.accuracy_interval == interval and interval.n == 2 and interval.low < interval.mean < interval.high
    line = compare_summary(ledger, "glyphs", "lp", 5, "imp:0", "random:4")
    assert f"accuracy {100 * interval.mean:.1f}% [95% CI {100 * interval.low:.1f}, {100 * interval.high:.1f}] (n=2)" in line
    assert line.startswith("glyphs · lp · 5-shot | dense: ") and "random baseline level 4" in line
    fig = compare_panel(ledger, "glyphs", "lp", 5, "imp:0", "random:4")
    accuracy_ax = fig.axes[0]
    points = [list(c.get_offsets()[:, 1]) for c in accuracy_ax.collections if c.__class__.__name__ == "PathCollection"]
    assert points[1] == pytest.approx(100 * expected["accuracy"].to_numpy())
    assert points[0] == pytest.approx(100 * cell[(cell["ticket_kind"] == "imp") & (cell["level"] == 0)]
                                      .sort_values("seed")["accuracy"].to_numpy())
    assert "random baseline level 4" in fig.axes[4].get_title() and "pooled over 2 seed(s)" in fig.axes[4].get_title()
    without = ledger[~((ledger["level"] == 2) & (ledger["n_shot"] == 5))]
    with pytest.raises(ReprolibError, match=r"IMP level 2 .* has no run for glyphs · lp · 5-shot; networks with "
                                            r"runs there: dense, IMP level 4"):
        comparison(without, "glyphs", "lp", 5, "imp:0", "imp:2")


def test_reliability_bins_pool_over_seeds() -> None:
    import json

    one = {"counts": [2, 0, 2], "accuracy": [0.5, 0.0, 1.0], "confidence": [0.2, 0.0, 0.9], "edges": [0, 0.3, 0.6, 1]}
    two = {"counts": [2, 1, 0], "accuracy": [1.0, 1.0, 0.0], "confidence": [0.3, 0.5, 0.0], "edges": [0, 0.3, 0.6, 1]}
    pooled = pooled_reliability([json.dumps(one), json.dumps(two), float("nan")])
    assert pooled["counts"] == [4, 1, 2]
    assert pooled["accuracy"] == pytest.approx([0.75, 1.0, 1.0]) and pooled["confidence"] == pytest.approx([0.25, 0.5, 0.9])


def test_imagenet_label_maps_show_class_names() -> None:
    from reprolib.plots.explorer_run import class_names

    names = class_names("imagenet", 1000)
    assert len(names) == 1000 and names[409] == "analog clock" and names[0] == "tench"
    assert class_names("nowhere", 3) == ["0", "1", "2"]


def _smoke_study_here(synthetic_study, tmp_path, monkeypatch) -> Path:
    """The synthetic study as the smoke profile's results under a home of its own, its ledger built;
    returns its artifacts folder."""
    import shutil

    from reprolib.config import load_profile
    from reprolib.study.ledger import update_ledger

    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    monkeypatch.setenv(PROFILE_ENV, "smoke")   # the study picker sets it in the kernel: undone after the test
    artifacts = load_profile("smoke").path("artifacts")
    shutil.copytree(synthetic_study[0], artifacts)
    update_ledger(artifacts)
    return artifacts


def test_the_controls_redraw_and_a_profile_without_results_says_what_to_run(synthetic_study, tmp_path,
                                                                               monkeypatch) -> None:
    pytest.importorskip("ipywidgets")
    from reprolib.plots.explorer_widgets import BUSY, explorer_widgets, open_study

    _smoke_study_here(synthetic_study, tmp_path, monkeypatch)
    study = open_study("smoke")
    box = explorer_widgets(study)
    controls, seen = box.controls, [box.numbers.value]
    assert "IMP level 4" in seen[0] and box.busy.value.startswith("drawn in") and box.busy.value != BUSY
    assert len(box.pictures.children) == 1 and box.pictures.children[0].value[:4] == b"\x89PNG"
    for key, value in (("b", "imp:2"), ("a", "magnitude:4"), ("n_shot", 5), ("arm", "lp"), ("target", "glyphs")):
        controls[key].value = value
        assert box.numbers.value not in seen, key   # every control redraws with new numbers
        seen.append(box.numbers.value)
    assert box.numbers.value.startswith("glyphs · lp · 5-shot | magnitude baseline level 4")
    assert controls["metric"].value == "ece" and ("MCE", "mce") in controls["metric"].options
    controls["metric"].value = "mce"
    assert ", MCE " in box.numbers.value and ", ECE " not in box.numbers.value
    controls["details"].value = True
    assert len(box.pictures.children) == 2
    controls["profile"].value = "paper"   # no results there: one line, no traceback, the picker stays
    assert "paper: no results yet" in box.numbers.value and "make sweep PROFILE=paper" in box.numbers.value
    assert controls["target"].disabled and not controls["profile"].disabled and not box.pictures.children
    assert dict(controls["profile"].options)["paper (no results)"] == "paper"
    assert os.environ[PROFILE_ENV] == "paper"   # a rerun of the notebook opens the study picked
    controls["profile"].value = "smoke"
    assert box.numbers.value.startswith("glyphs · lp") and not controls["target"].disabled
    assert open_study("smoke-lite").ledger is None


def test_a_users_registered_profile_is_a_choice_of_the_explorer(tmp_path, monkeypatch) -> None:
    """The explorer's profile picker holds the profile the notebook opened, a user's file too."""
    from reprolib import config
    from reprolib.config import load_profile
    from reprolib.plots.explorer_widgets import profile_options

    monkeypatch.setenv(config.PROFILES_ENV, "")
    mine = tmp_path / "mine.yaml"
    mine.write_text((config.PROFILE_DIR / "smoke.yaml").read_text().replace("profile: smoke", "profile: mine"))
    assert ("mine (no results)", "mine") not in profile_options()
    load_profile(str(mine))   # what setup(profile="…/mine.yaml") does in the notebook
    assert ("mine (no results)", "mine") in profile_options()


def test_the_metric_beside_accuracy_is_chosen_among_the_registered_ones(synthetic_study) -> None:
    from reprolib.plots.explorer import metric_choices

    _, ledger = synthetic_study
    assert metric_choices(ledger) == [("ECE", "ece"), ("MCE", "mce"), ("NLL", "nll"), ("Brier score", "brier")]
    filled = ledger.assign(classwise_ece=ledger["ece"] / 2)   # after --recompute-metrics
    assert metric_choices(filled)[-1] == ("classwise ECE", "classwise_ece")
    cell = ledger[(ledger["target"] == "glyphs") & (ledger["arm"] == "lp") & (ledger["n_shot"] == 5)]
    expected = t_interval(cell[cell["ticket_kind"] == "random"].sort_values("seed")["mce"])
    line = compare_summary(ledger, "glyphs", "lp", 5, "imp:0", "random:4", metric="mce")
    assert line.endswith(f"MCE {expected.mean:.3f} [95% CI {expected.low:.3f}, {expected.high:.3f}] (n=2)")
    fig = compare_panel(filled, "glyphs", "lp", 5, "imp:0", "random:4", metric="classwise_ece")
    assert fig.axes[1].get_title() == "classwise ECE (lower = better calibrated)"
    with pytest.raises(ReprolibError, match="explorer metric 'adaptive_ece'.*valid choices.*ece"):
        comparison(ledger, "glyphs", "lp", 5, metric="adaptive_ece")   # no values in this ledger


# --- the figures a researcher reads: legible at 100% zoom, on the shipped studies' own ledgers ---

CHECKOUT = __import__("pathlib").Path(__file__).resolve().parents[1]
SHIPPED = [study for study in ("embedded", "imagenet-lite") if (CHECKOUT / "artifacts" / study / "ledger.csv").exists()]


def _shipped_index(study: str):
    from reprolib.plots.explorer import StudyIndex
    from reprolib.study.ledger import load_ledger

    return StudyIndex(load_ledger(CHECKOUT / "artifacts" / study))


@pytest.mark.skipif("imagenet-lite" not in SHIPPED, reason="no shipped imagenet-lite study in this checkout")
def test_the_shots_picker_offers_what_the_chosen_target_and_arm_ran(tmp_path, monkeypatch) -> None:
    """imagenet-lite runs full data on digits only: moving from digits at full data to glyphs keeps
    a cell with runs (its most shots), with seeds to pick, instead of an empty one."""
    pytest.importorskip("ipywidgets")
    import shutil

    from reprolib.plots.explorer_widgets import explorer_widgets, open_study

    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    monkeypatch.setenv(PROFILE_ENV, "imagenet-lite")
    (tmp_path / "artifacts" / "imagenet-lite").mkdir(parents=True)
    shutil.copy(CHECKOUT / "artifacts" / "imagenet-lite" / "ledger.csv", tmp_path / "artifacts" / "imagenet-lite")
    index = _shipped_index("imagenet-lite")
    ran = {target: index.shots(target, "vp/ilm") for target in ("digits", "glyphs")}
    assert ran["digits"][-1] == -1 and -1 not in ran["glyphs"]
    box = explorer_widgets(open_study("imagenet-lite"))
    controls = box.controls
    controls["target"].value, controls["arm"].value = "digits", "vp/ilm"
    controls["n_shot"].value = -1
    assert box.numbers.value.startswith("digits · vp/ilm · full |")
    controls["target"].value = "glyphs"
    assert [n for _, n in controls["n_shot"].options] == ran["glyphs"]
    assert controls["n_shot"].value == ran["glyphs"][-1] and controls["seed"].options
    assert box.numbers.value.startswith(f"glyphs · vp/ilm · {ran['glyphs'][-1]}-shot |")


def _texts_outside(fig) -> list[str]:
    """What is drawn outside the figure: each visible axes' tight box (its tick labels, axis labels,
    title and texts), each legend, each figure text (the title)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    drawn = [(ax.get_title() or f"axes {k}", ax.get_tightbbox(renderer)) for k, ax in enumerate(fig.axes)
             if ax.get_visible()]
    drawn += [(f"legend {legend.get_title().get_text() or [t.get_text() for t in legend.texts][:2]}",
               legend.get_window_extent(renderer)) for legend in fig.legends + [ax.get_legend() for ax in fig.axes]
              if legend is not None and legend.get_visible()]
    drawn += [(text.get_text(), text.get_window_extent(renderer)) for text in fig.texts
              if text.get_visible() and text.get_text()]
    box = fig.bbox
    return [f"{what!r} at {tuple(round(v) for v in extent.extents)} (figure {tuple(round(v) for v in box.extents)})"
            for what, extent in drawn if extent.x0 < box.x0 - 0.5 or extent.y0 < box.y0 - 0.5
            or extent.x1 > box.x1 + 0.5 or extent.y1 > box.y1 + 0.5]


def _overlapping_tick_labels(fig) -> list[tuple[str, str]]:
    """Pairs of drawn x tick labels, within an axes or across neighbouring ones, whose extents overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = []
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        low, high = sorted(ax.get_xlim())
        labels += [(t.get_text(), t.get_window_extent(renderer)) for x, t in zip(ax.get_xticks(), ax.get_xticklabels())
                   if low <= x <= high and t.get_visible() and t.get_text()]
    return [(a, b) for k, (a, box_a) in enumerate(labels) for b, box_b in labels[k + 1:] if box_a.overlaps(box_b)]


@pytest.mark.skipif(not SHIPPED, reason="no shipped study in this checkout")
@pytest.mark.parametrize("study", SHIPPED)
def test_the_comparison_is_legible_for_every_network_of_a_shipped_study(study: str) -> None:
    """At the widget's 100 dpi, against dense and against the network with the longest name: no
    text leaves the figure, no two tick labels overlap."""
    from reprolib.plots.explorer_figure import DPI, CompareFigure, comparison_title

    index = _shipped_index(study)
    target, arm = sorted(index.ledger["target"].unique())[0], "vp/ilm"
    n_shot = int(index.ledger["n_shot"].max())
    keys = [key for key in index.labels if (target, arm, n_shot) in index.cells and key in index.cells[target, arm, n_shot]]
    longest = max(keys, key=lambda k: len(index.labels[k]))
    figure = CompareFigure()
    assert DPI >= 100 and figure.figure.dpi == DPI
    for a, b in [(DENSE_KEY, key) for key in keys] + [(longest, key) for key in keys]:
        fig = figure.show(comparison(index, target, arm, n_shot, a, b), comparison_title(target, arm, n_shot), seed=1)
        assert _texts_outside(fig) == [], (a, b)
        assert _overlapping_tick_labels(fig) == [], (a, b)


DENSE_KEY = "imp:0"


def test_the_redrawn_figure_is_the_full_draw_pixel_for_pixel(synthetic_study) -> None:
    """The widget reuses the unchanging pixels (blitting); what it shows must be what a full draw shows."""
    import io

    from PIL import Image

    from reprolib.plots.explorer import StudyIndex
    from reprolib.plots.explorer_figure import CompareFigure

    index = StudyIndex(synthetic_study[1])
    figure = CompareFigure()
    for b, metric, seed in (("imp:4", "ece", 1), ("random:4", "nll", 2), ("imp:2", "mce", None)):
        figure.show(comparison(index, "glyphs", "lp", 5, "imp:0", b, metric), "glyphs · lp · 5-shot", seed)
        shown = np.asarray(Image.open(io.BytesIO(figure.png())).convert("RGBA"))
    figure.canvas.draw()
    assert (shown == np.asarray(figure.canvas.buffer_rgba())).all()


def test_the_redrawn_run_panel_is_the_full_draw_pixel_for_pixel(synthetic_study, tmp_path) -> None:
    """The one-run panel is made once and redrawn over its unchanging pixels; after runs of every
    kind (a prompt, LP's none, one not shipped) what it shows must be what a full draw shows."""
    import io

    from matplotlib.text import Text
    from PIL import Image

    from reprolib.plots.explorer_run import NOT_SHIPPED, RunFigure

    artifacts, ledger = synthetic_study
    prompt = ledger[(ledger["arm"] == "vp/ilm") & (ledger["level"] == 4)].iloc[0]
    np.savez(artifacts / "runs" / f"{prompt['id']}.npz", **{"prompt.theta": np.zeros((1, 28, 28), np.float32)})
    probe = ledger[ledger["arm"] == "lp"].iloc[0]
    figure = RunFigure()
    for row, study in ((probe, artifacts), (prompt, tmp_path / "clone"), (prompt, artifacts)):
        figure.show(row, study)
        shown = np.asarray(Image.open(io.BytesIO(figure.png())).convert("RGBA"))
        texts = [t.get_text() for t in figure.figure.findobj(Text)]
        assert (NOT_SHIPPED in texts) == (study != artifacts), row["id"]
        assert bool(figure.ax_prompt.get_images()) == (row["arm"] != "lp" and study == artifacts)
    figure.canvas.draw()
    assert (shown == np.asarray(figure.canvas.buffer_rgba())).all()


def test_the_picked_seed_is_ringed_and_the_one_run_panel_follows_it(synthetic_study, tmp_path, monkeypatch) -> None:
    pytest.importorskip("ipywidgets")
    from matplotlib.text import Text

    from reprolib.plots.explorer import StudyIndex
    from reprolib.plots.explorer_figure import CompareFigure
    from reprolib.plots.explorer_run import run_panel
    from reprolib.plots.explorer_widgets import explorer_widgets, open_study

    artifacts = _smoke_study_here(synthetic_study, tmp_path, monkeypatch)
    box = explorer_widgets(open_study("smoke"))
    controls = box.controls
    controls["details"].value = True
    assert list(controls["seed"].options) == [1, 2] and controls["seed"].value == 1
    first = box.pictures.children[1].value
    controls["seed"].value = 2
    assert box.pictures.children[1].value != first   # the one-run panel shows seed 2 now
    cell = [controls[k].value for k in ("target", "arm", "n_shot")]
    runs = comparison(StudyIndex(synthetic_study[1]), *cell, controls["a"].value, controls["b"].value)
    ledger = synthetic_study[1]
    row = ledger[ledger["id"] == runs[1].ids[1]].iloc[0]
    assert int(row["seed"]) == 2
    assert any("seed 2" in t.get_text() for t in run_panel(row, artifacts).findobj(Text))
    fig = CompareFigure().show(runs, "t", seed=2)
    rings = [c for c in fig.axes[0].collections if c.__class__.__name__ == "PathCollection"
             and not c.get_facecolor().any()]
    assert [float(r.get_offsets()[0, 1]) for r in rings] == pytest.approx([100 * r.accuracy[1] for r in runs])


def test_learned_state_is_none_when_the_study_did_not_ship_it(synthetic_study, tmp_path) -> None:
    from matplotlib.text import Text

    from reprolib.plots.explorer_run import NOT_SHIPPED, learned_state, run_panel

    artifacts, ledger = synthetic_study
    row = ledger[(ledger["arm"] == "vp/ilm") & (ledger["level"] == 4)].iloc[0]
    shipped_without = tmp_path / "shipped"   # a clone: the ledger, no runs folder
    assert learned_state(shipped_without, row["id"]) is None
    texts = [t.get_text() for t in run_panel(row, shipped_without).findobj(Text)]
    assert NOT_SHIPPED in texts and any(" -> " in t for t in texts)   # the label map still comes from the ledger
    np.savez(artifacts / "runs" / f"{row['id']}.npz", **{"prompt.theta": np.zeros((1, 28, 28), np.float32)})
    state = learned_state(artifacts, row["id"])
    assert set(state) == {"prompt.theta"} and state["prompt.theta"].shape == (1, 28, 28)
    fig = run_panel(row, artifacts)
    assert fig.axes[2].get_images() and NOT_SHIPPED not in [t.get_text() for t in fig.findobj(Text)]
    assert _texts_outside(fig) == []


@pytest.mark.skipif(not SHIPPED, reason="no shipped study in this checkout")
@pytest.mark.parametrize("study", SHIPPED)
def test_the_one_run_panel_is_legible_with_the_studys_class_names(study: str) -> None:
    """The longest label maps of the study (ImageNet's class names for imagenet-lite) stay inside."""
    from reprolib.config import load_profile
    from reprolib.plots.explorer_run import run_panel

    ledger = _shipped_index(study).ledger
    profile = load_profile(study)
    prompts = ledger[ledger["label_map_indices"].notna()]
    longest = prompts.loc[prompts["label_map_indices"].str.len().sort_values().index[-3:]]
    for _, row in pd.concat([longest, ledger[ledger["arm"] == "lp"].head(1)]).iterrows():
        fig = run_panel(row, CHECKOUT / "artifacts" / study, profile.source)
        assert fig.dpi >= 100 and _texts_outside(fig) == [], row["id"]
