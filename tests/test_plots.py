"""Plots and tables: drawn from a synthetic ledger, checked for the numbers they show."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reprolib import plots
from reprolib.errors import ReprolibError
from reprolib.study.ledger import tickets_table
from reprolib.study.published import arm_columns, compare, load_published, published_source
from synthetic_study import true_accuracy


def _line_ys(ax, label: str) -> np.ndarray:
    """y values of the errorbar series (or plain line) named `label`."""
    lines = [c.lines[0] for c in ax.containers if c.get_label() == label]
    lines += [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, [c.get_label() for c in ax.containers]
    return np.asarray(lines[0].get_ydata(), dtype=float)


def test_accuracy_vs_sparsity_plots_seed_means_in_percent(synthetic_study) -> None:
    _, ledger = synthetic_study
    fig = plots.accuracy_vs_sparsity(ledger)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["digits (full)", "glyphs (full)"]
    expected = [100 * np.mean([true_accuracy("vp/ilm", lv, -1, s) for s in (1, 2)]) for lv in (0, 2, 4)]
    assert _line_ys(axes[0], "vp/ilm") == pytest.approx(expected)


def test_error_bars_are_95_percent_t_intervals_and_one_run_has_none(synthetic_study) -> None:
    _, ledger = synthetic_study
    fig = plots.accuracy_vs_sparsity(ledger)
    (bars,) = [c for c in fig.axes[0].containers if c.get_label() == "vp/ilm"]
    segments = bars.lines[2][0].get_segments()                    # one vertical segment per density
    values = [100 * true_accuracy("vp/ilm", 0, -1, s) for s in (1, 2)]
    low, high = scipy_stats.t.interval(0.95, 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (segments[0][0][1], segments[0][1][1]) == (pytest.approx(low), pytest.approx(high))   # dense, first
    assert "95% t interval" in fig.legends[0].get_title().get_text()
    one = plots.accuracy_vs_sparsity(ledger[ledger["seed"] == 1])
    (bars,) = [c for c in one.axes[0].containers if c.get_label() == "vp/ilm"]
    assert all(seg[0][1] == pytest.approx(seg[1][1]) for seg in bars.lines[2][0].get_segments())   # no bar


def test_density_ticks_include_one_shot_networks_and_the_legend_hides_no_point(synthetic_study) -> None:
    """A study whose sparse networks are all one-shot (imagenet-lite) labels every density drawn."""
    _, ledger = synthetic_study
    sparse = ledger["level"] > 0
    oneshot = ledger[~sparse | (ledger["ticket_kind"] == "imp")].copy()
    oneshot.loc[oneshot["level"] > 0, "ticket_kind"] = "magnitude"
    fig = plots.accuracy_vs_sparsity(oneshot)
    ax = [a for a in fig.axes if a.get_title()][0]
    expected = sorted({f"{round(100 * d, 1):g}" for d in oneshot["density"]}, key=float, reverse=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == expected and len(expected) == 3
    assert ax.get_legend() is None and len(fig.legends) == 1     # the legend sits outside the panels


def test_calibration_few_shot_smm_reliability_legacy_and_upstream_figures(synthetic_study, tmp_path: Path) -> None:
    artifacts, ledger = synthetic_study
    calib = plots.calibration_vs_sparsity(ledger, arms=["lp", "vp/ilm"])
    ece_ax = calib.axes[0]
    assert _line_ys(ece_ax, "lp") == pytest.approx([0.0515 + 0.01 * lv for lv in (0, 2, 4)])
    shots = plots.few_shot(ledger, arms=["lp"])
    assert _line_ys(shots.axes[0], "level 4") == pytest.approx(
        [100 * np.mean([true_accuracy("lp", 4, n, s) for s in (1, 2)]) for n in (5, -1)])
    smm = plots.smm_vs_prompts(ledger)
    heights = [p.get_height() for p in smm.axes[0].patches[:4]]   # dense bars: pad, narrow, full, smm
    assert heights[0] == pytest.approx(100 * np.mean([true_accuracy("vp/ilm", 0, -1, s) for s in (1, 2)]))
    pair = plots.reliability_pair(ledger, "digits", "vp/ilm")
    assert "IMP level 4" in pair.axes[1].get_title() and pair.axes[0].get_title().startswith("dense")
    _assert_guo_reliability(pair)
    legacy = plots.legacy_vs_real_ece(ledger)
    assert len(legacy.axes[0].collections) == ledger["arm"].nunique()
    up = plots.upstream_per_level(tickets_table(artifacts))
    assert _line_ys(up.axes[0], "imp") == pytest.approx([90.0, 89.6, 89.2])
    assert plots.ood_vs_sparsity(ledger.drop(columns=[c for c in ledger if c.startswith("ood_")])) is None
    paths = plots.save(calib, tmp_path, "calibration")
    assert [p.name for p in paths] == ["calibration.png", "calibration.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.glob(".*"))   # no temporary files left


def _assert_guo_reliability(pair) -> None:
    """Two diagrams over two count histograms, shared axes, one legend naming every element."""
    dense, ticket, dense_counts, ticket_counts = pair.axes
    assert dense.get_shared_y_axes().joined(dense, ticket) and dense.get_shared_x_axes().joined(dense, ticket_counts)
    assert dense_counts.get_ylabel() == "share" and ticket_counts.get_shared_y_axes().joined(dense_counts, ticket_counts)
    shares = [p.get_height() for p in dense_counts.patches]
    assert sum(shares) == pytest.approx(1.0)
    labels = [t.get_text() for t in pair.legends[0].get_texts()]
    assert labels == ["perfect calibration", plots.calibration.ACCURACY_LABEL, plots.calibration.OVER_LABEL,
                      plots.calibration.UNDER_LABEL, "share of test images per bin"]
    # every gap swatch looks like the gap bars it names (an empty panel once gave it the default blue)
    swatches = dict(zip(labels[1:], pair.legends[0].get_patches()))   # the first entry is the diagonal line
    assert swatches[plots.calibration.OVER_LABEL].get_facecolor()[:3] == pytest.approx((0xc4 / 255, 0x4e / 255, 0x52 / 255))
    assert swatches[plots.calibration.UNDER_LABEL].get_hatch() == "//"


def test_reliability_gap_bars_span_accuracy_to_confidence() -> None:
    from matplotlib.figure import Figure

    bins = {"counts": [0, 10, 30], "accuracy": [0.0, 0.2, 0.9], "confidence": [0.0, 0.5, 0.8],
            "edges": [0.0, 1 / 3, 2 / 3, 1.0]}
    ax = Figure().subplots()
    plots.draw_reliability(ax, bins, "t")
    by_label = {c.get_label(): [(p.get_y(), p.get_height()) for p in c.patches if p.get_visible()]
                for c in ax.containers}   # a bin's bar that does not apply to it is hidden
    assert by_label[plots.calibration.ACCURACY_LABEL] == [(0.0, pytest.approx(0.2)), (0.0, pytest.approx(0.9))]
    over = by_label[plots.calibration.OVER_LABEL]
    under = by_label[plots.calibration.UNDER_LABEL]
    assert over == [(pytest.approx(0.2), pytest.approx(0.3))] and under == [(pytest.approx(0.8), pytest.approx(0.1))]


def test_tables_and_markdown(synthetic_study, tmp_path: Path) -> None:
    _, ledger = synthetic_study
    pivot = plots.interval_pivot(ledger)
    row = pivot[(pivot["target"] == "digits") & (pivot["arm"] == "lp")].iloc[0]
    values = [100 * true_accuracy("lp", 0, -1, s) for s in (1, 2)]
    low, high = scipy_stats.t.interval(0.95, 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert row["dense"] == f"{np.mean(values):.1f} [{low:.1f}, {high:.1f}] n=2"     # mean [95% t interval] n=seeds
    assert list(pivot.columns[:4]) == ["target", "arm", "shots", "dense"]
    assert "95% t interval" in pivot.attrs["footnote"]
    summary = plots.summary_table(ledger)
    assert set(summary["n_seeds"]) == {2}
    first = summary[(summary["target"] == "digits") & (summary["arm"] == "lp") & (summary["level"] == 0)
                    & (summary["ticket_kind"] == "imp") & (summary["n_shot"] == -1)].iloc[0]
    assert (first["accuracy_low"], first["accuracy_high"]) == (pytest.approx(low), pytest.approx(high))
    one_seed = plots.interval_pivot(ledger[ledger["seed"] == 1])
    assert one_seed["dense"].str.endswith("(one run)").all()
    plots.save_table(pivot, tmp_path, "accuracy")
    markdown = (tmp_path / "accuracy.md").read_text().splitlines()
    assert markdown[0].startswith("| target | arm | shots | dense |") and len(markdown) == len(pivot) + 4
    assert markdown[-1] == pivot.attrs["footnote"]
    assert plots.few_shot_pivot(ledger).columns.tolist()[-2:] == ["5-shot", "full"]


def test_explorer_panel_reads_npz_prompt_and_label_map(synthetic_study) -> None:
    artifacts, ledger = synthetic_study
    run = plots.select_run(ledger, "digits", "vp/ilm", 2, -1)
    np.savez(artifacts / "runs" / f"{run['id']}.npz", **{"prompt.theta": np.zeros((1, 28, 28), np.float32),
                                                         "label_map": np.array([3, 1, 0])})
    fig = plots.explorer_panel(ledger, artifacts, "digits", "vp/ilm", 2, -1)
    image = fig.axes[2].get_images()[0].get_array()
    assert image.shape == (28, 28) and float(image[0, 0]) == pytest.approx(0.5) and float(image[14, 14]) == 0.0
    with pytest.raises(ReprolibError, match="no run for target 'digits' arm 'vp/ilm' imp level 3"):
        plots.select_run(ledger, "digits", "vp/ilm", 3, -1)


def test_published_tables_keep_sources_and_compare(synthetic_study) -> None:
    _, ledger = synthetic_study
    assert "Chen et al. CVPR 2023" in published_source("ilmvp")[0]
    smm = load_published("smm")
    assert smm[(smm["backbone"] == "resnet18") & (smm["dataset"] == "svhn")]["smm"].item() == 84.4
    paper = ledger.assign(backbone="resnet18", target=ledger["target"].map({"digits": "svhn", "glyphs": "gtsrb"}))
    table = compare(paper, "smm")
    row = table[(table["dataset"] == "svhn") & (table["arm"] == "smm/ilm")].iloc[0]
    assert row["ours"] == pytest.approx(100 * np.mean([true_accuracy("smm/ilm", 0, -1, s) for s in (1, 2)]), abs=0.01)
    assert row["difference"] == pytest.approx(row["ours"] - 84.4, abs=0.01)
    seeds = [100 * true_accuracy("smm/ilm", 0, -1, s) for s in (1, 2)]
    low, high = scipy_stats.t.interval(0.95, 1, loc=np.mean(seeds), scale=scipy_stats.sem(seeds))
    assert (row["ours_low"], row["ours_high"]) == (pytest.approx(low, abs=0.01), pytest.approx(high, abs=0.01))
    with pytest.raises(ReprolibError, match="valid choices: ilmvp, smm"):
        load_published("rlt")


def test_published_columns_come_from_the_arms() -> None:
    """Each table's columns are read from the registered arms' entries (labels, short names), in the
    table's own column order; the pairs are the papers' methods, as they were spelt out before."""
    assert arm_columns("ilmvp") == {"vp/ilm": "ilm_vp", "vp/rlm": "rlm_vp", "vp/flm": "flm_vp", "lp": "lp"}
    assert arm_columns("smm") == {"vp/ilm": "pad", "narrow/ilm": "narrow", "medium/ilm": "medium",
                                  "full/ilm": "full", "smm/ilm": "smm"}
    for name in ("ilmvp", "smm"):
        columns = list(load_published(name).columns)
        assert list(arm_columns(name).values()) == [c for c in columns if c in arm_columns(name).values()]


def test_reprogrammer_bars_one_bar_per_method_and_target() -> None:
    import pandas as pd

    table = pd.DataFrame({"target": ["digits", "digits", "glyphs", "glyphs"],
                          "method": ["zero_shot", "residual_reprogrammer"] * 2, "alpha": [None, 0.4, None, 0.4],
                          "id_accuracy": [0.1, 0.8, 0.2, 0.7], "mean_auroc": [0.5, 0.9, 0.6, 0.8]})
    fig = plots.reprogrammer_bars(table, columns=("id_accuracy", "mean_auroc"))
    lengths = [p.get_width() for p in fig.axes[0].patches]
    assert lengths == pytest.approx([0.1, 0.8, 0.2, 0.7])
    ticks = {t.get_text(): t.get_position()[1] for t in fig.axes[0].get_yticklabels()}
    assert ticks == {"zero-shot": 1, "residual, α = 0.4": 0}   # first method on top
    assert all(t.get_rotation() == 0 for t in fig.axes[0].get_yticklabels())
    assert fig.legends and not fig.axes[0].get_legend()   # the legend is outside the panels
    assert plots.reprogrammer_bars(table.head(0)) is None


def test_capped_few_shot_cells_are_marked_in_the_table_and_the_figure(synthetic_study, tmp_path: Path) -> None:
    """Issue 10 fix 4: a 5-shot cell whose runs kept fewer images in some class is marked (table: †
    and the smallest effective shots, plus a footnote; figure: hatched, with a note)."""
    _, ledger = synthetic_study
    ledger = ledger.copy()
    capped = (ledger["target"] == "digits") & (ledger["n_shot"] == 5)
    ledger["capped"] = np.where(capped, 2, 0)
    ledger["shots_min"] = np.where(capped, 3, np.where(ledger["n_shot"] > 0, ledger["n_shot"], np.nan))
    pivot = plots.few_shot_pivot(ledger)
    digits, glyphs = pivot[pivot["target"] == "digits"], pivot[pivot["target"] == "glyphs"]
    assert digits["5-shot"].str.endswith(" †3").all() and not digits["full"].str.contains("†").any()
    assert not glyphs["5-shot"].str.contains("†").any()
    assert "capped" in pivot.attrs["footnote"]
    plots.save_table(pivot, tmp_path, "few_shot")
    assert (tmp_path / "few_shot.md").read_text().rstrip().splitlines()[-1] == plots.tables.CAPPED_FOOTNOTE
    fig = plots.few_shot(ledger, arms=["lp"])
    hatched = {ax.get_title(): [p.get_hatch() for p in ax.patches] for ax in fig.axes if ax.get_title()}
    assert hatched["digits · lp"] == ["//"] and hatched["glyphs · lp"] == []
    assert "keep all of them" in fig._supxlabel.get_text()
    # A ledger without the columns (older records) draws no marks and no footnote.
    plain = plots.few_shot_pivot(ledger.drop(columns=["capped", "shots_min"]))
    assert "capped" not in plain.attrs["footnote"] and not plain["5-shot"].str.contains("†").any()
