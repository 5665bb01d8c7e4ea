"""The explorer: any two networks of a study over every seed, its controls, and a study without results."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.plots.explorer import (compare_panel, compare_summary, comparison, explorer_choices, networks,
                                     pooled_reliability)
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


def test_the_controls_redraw_and_a_profile_without_results_says_what_to_run(synthetic_study, tmp_path,
                                                                               monkeypatch) -> None:
    pytest.importorskip("ipywidgets")
    import shutil

    from reprolib.config import load_profile
    from reprolib.study.ledger import update_ledger
    from reprolib.plots.explorer_widgets import BUSY, explorer_widgets, open_study

    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    artifacts = load_profile("smoke").path("artifacts")
    shutil.copytree(synthetic_study[0], artifacts)
    update_ledger(artifacts)
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
    assert "paper: no results yet" in box.numbers.value and "make figures PROFILE=paper" in box.numbers.value
    assert controls["target"].disabled and not controls["profile"].disabled and not box.pictures.children
    assert dict(controls["profile"].options)["paper (no results)"] == "paper"
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
