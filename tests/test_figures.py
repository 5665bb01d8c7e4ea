"""No figure without data: save refuses empty panels, plots with nothing to draw return None, a
study of one-shot networks and few-shot runs gets its calibration, reliability and OOD figures,
and every committed PNG (and every image the README shows) draws data."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from reprolib import plots
from reprolib.errors import ReprolibError
from reprolib.plots.common import REFERENCE

CHECKOUT = Path(__file__).resolve().parents[1]
# Share of clearly coloured pixels (saturation > 0.25) a figure with data has: every figure
# draws its data in colour (arms, kinds, bars), while a text-only or empty figure is greyscale.
MIN_COLOURED_SHARE = 0.0005


def coloured_share(png: Path) -> float:
    rgb = matplotlib.image.imread(png)[..., :3]
    return float(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25).mean())


def test_save_refuses_a_panel_without_data_and_none_writes_nothing(tmp_path, capsys) -> None:
    fig = Figure()
    full, empty = fig.subplots(1, 2)
    full.plot([1, 2], [3, 4])
    empty.axhline(0.5, gid=REFERENCE)          # a chance line alone is no data
    empty.errorbar([], [], yerr=[])            # nor is an empty series
    empty.set_title("OOD")
    with pytest.raises(ReprolibError, match=r"panels without data: \['OOD'\]"):
        plots.save(fig, tmp_path, "half_empty")
    text_only = Figure()
    text_only.add_subplot().text(0.5, 0.5, "nothing here")
    with pytest.raises(ReprolibError, match="panels without data"):
        plots.save(text_only, tmp_path, "placeholder")
    (tmp_path / "stale.png").write_bytes(b"old placeholder")
    assert plots.save(None, tmp_path, "stale", why="no OOD metrics") == []
    assert capsys.readouterr().out.strip() == "stale: nothing to draw (no OOD metrics); no figure written"
    assert not list(tmp_path.iterdir())
    empty.plot([1], [np.nan])                  # NaN is no data either
    assert plots.empty_panels(fig) == ["OOD"]
    empty.bar([0], [0.7])
    assert plots.empty_panels(fig) == []


@pytest.fixture(scope="module")
def oneshot_ledger(tmp_path_factory):
    """A study like imagenet-lite: dense plus one-shot magnitude networks, few-shot runs only, OOD metrics."""
    from reprolib.study.ledger import build_ledger
    from synthetic_study import write_synthetic_study

    artifacts = tmp_path_factory.mktemp("oneshot")
    write_synthetic_study(artifacts, n_shots=(5,), ood=True)
    ledger = build_ledger(artifacts)
    return ledger[(ledger["ticket_kind"] == "magnitude") | (ledger["level"] == 0)].reset_index(drop=True)


def test_a_oneshot_few_shot_study_gets_calibration_reliability_smm_and_ood_figures(oneshot_ledger, tmp_path) -> None:
    ledger = oneshot_ledger
    assert not ((ledger["ticket_kind"] == "imp") & (ledger["level"] > 0)).any() and (ledger["n_shot"] == 5).all()
    figures = {"calibration": plots.calibration_vs_sparsity(ledger, n_shot=5),
               "reliability": plots.reliability_pair(ledger, "digits", "vp/ilm", n_shot=5),
               "smm": plots.smm_vs_prompts(ledger, n_shot=5), "ood": plots.ood_vs_sparsity(ledger, n_shot=5)}
    for name, fig in figures.items():
        assert fig is not None, name
        plots.save(fig, tmp_path, name)        # no panel without data
    assert "magnitude level 4" in figures["reliability"].axes[1].get_title()
    calib_lp = [c for c in figures["calibration"].axes[0].containers if c.get_label() == "lp"][0]
    assert np.asarray(calib_lp.lines[0].get_xdata()) == pytest.approx([100.0, 100 * 0.8 ** 4])
    # full data was never run: nothing to draw, and no figure
    assert plots.calibration_vs_sparsity(ledger, n_shot=-1) is None
    assert plots.ood_vs_sparsity(ledger, n_shot=-1) is None
    assert plots.reliability_pair(ledger, "digits", "lp", n_shot=-1) is None


def test_ood_panels_per_target_in_words_with_the_chance_line(oneshot_ledger) -> None:
    fig = plots.ood_vs_sparsity(oneshot_ledger, n_shot=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["digits: ood_auroc_msp", "glyphs: ood_auroc_msp"]   # an unknown column keeps its name
    from reprolib.plots.ood import ood_title

    assert ood_title("digits", "ood_datasets_energy_auroc") == \
        "digits vs other datasets (fashion_mnist, glyphs)\nscore: negative energy"
    for ax in fig.axes:
        chance = [line for line in ax.get_lines() if line.get_gid() == REFERENCE]
        assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.5, 0.5]
        assert ax.get_legend() is None   # the legend sits outside the panels
    assert fig.legends


def test_upstream_panel_is_agreement_when_nothing_was_measured() -> None:
    import pandas as pd

    tickets = pd.DataFrame({"ticket_kind": ["imp", "magnitude", "magnitude"], "level": [0, 2, 4],
                            "density": [1.0, 0.64, 0.41], "upstream_accuracy": [None, None, None],
                            "agreement_with_dense": [None, 0.43, 0.14]})
    fig = plots.upstream_per_level(tickets)
    assert fig.axes[0].get_title().startswith("Agreement with dense")
    assert plots.empty_panels(fig) == []
    fig = plots.upstream_per_level(tickets.drop(columns=["agreement_with_dense"]))
    assert [ax.get_title() for ax in fig.axes] == ["Density"]
    assert plots.upstream_per_level(tickets.head(0)) is None


# The offline studies' figures (committed); figures/smoke* are test outputs.
COMMITTED_PNGS = sorted(p for study in ("embedded", "imagenet-lite") for p in (CHECKOUT / "figures" / study).glob("*.png"))


@pytest.mark.parametrize("png", COMMITTED_PNGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_figure_draws_data(png: Path) -> None:
    assert coloured_share(png) >= MIN_COLOURED_SHARE, f"{png} looks like a placeholder or an empty figure"
    assert png.with_suffix(".pdf").exists()


def test_every_readme_image_exists_and_draws_data() -> None:
    readme = (CHECKOUT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme) + re.findall(r"<img[^>]*src=\"([^\"]+)\"", readme)
    assert images, "the README shows no figure"
    for image in images:
        path = CHECKOUT / image
        assert path.is_file() and path.stat().st_size > 0, f"README image {image} is missing or empty"
        if path.suffix == ".png":
            assert coloured_share(path) >= MIN_COLOURED_SHARE, f"README image {image} draws no data"


def test_no_committed_figure_is_a_copy_of_another() -> None:
    """A study without full-data runs has its largest n-shot as the headline figure: notebook 03
    does not draw it a second time under its few-shot name."""
    import hashlib

    seen: dict[str, Path] = {}
    copies = []
    for png in COMMITTED_PNGS:
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
        if digest in seen:
            copies.append(f"{png.relative_to(CHECKOUT)} == {seen[digest].relative_to(CHECKOUT)}")
        seen.setdefault(digest, png)
    assert copies == []


def test_the_headline_setting_gets_no_second_figure() -> None:
    import pandas as pd

    few_shot_only = pd.DataFrame({"n_shot": [1, 5, 10, 10]})
    assert plots.headline_shot(few_shot_only) == 10 and plots.own_shot_settings(few_shot_only) == [1, 5]
    with_full = pd.DataFrame({"n_shot": [1, 10, -1]})
    assert plots.headline_shot(with_full) == -1 and plots.own_shot_settings(with_full) == [1, 10]


def _plain_percent(labels: list[str]) -> bool:
    return all(re.fullmatch(r"\d+(\.\d+)?", text) for text in labels if text)


def test_density_axes_read_in_plain_percent() -> None:
    """The log density axis of the upstream figure labels its densities ('41', '64'), not '4x10^1'."""
    import pandas as pd

    tickets = pd.DataFrame({"ticket_kind": ["magnitude"] * 4, "level": [1, 2, 3, 4],
                            "density": [0.8, 0.64, 0.512, 0.41], "upstream_accuracy": [None] * 4,
                            "agreement_with_dense": [0.83, 0.43, 0.26, 0.14]})
    fig = plots.upstream_per_level(tickets)
    density = [ax for ax in fig.axes if ax.get_title() == "Density"][0]
    labels = [t.get_text() for t in density.get_yticklabels()]
    assert labels == ["41", "51.2", "64", "80"] and _plain_percent(labels)
    assert not density.yaxis.get_minor_ticks() or all(not t.label1.get_text() for t in density.yaxis.get_minor_ticks())


def test_dense_is_joined_to_a_one_shot_family(oneshot_ledger) -> None:
    """In a study whose sparse networks are one-shot pruned (imagenet-lite), each arm's line runs
    from the dense model through them, and the legend says which marker is which."""
    fig = plots.accuracy_vs_sparsity(oneshot_ledger, n_shot=int(oneshot_ledger["n_shot"].max()))
    ax = fig.axes[0]
    (line,) = [c for c in ax.containers if c.get_label() == "vp/ilm"]
    xs = sorted(line.lines[0].get_xdata(), reverse=True)
    expected = sorted({round(100 * d, 6) for d in oneshot_ledger["density"]}, reverse=True)
    assert [round(x, 6) for x in xs] == expected and xs[0] == 100 and len(xs) >= 2
    assert "o dense, □ magnitude" in fig.legends[0].get_title().get_text()
    assert _plain_percent([t.get_text() for t in ax.get_xticklabels()])
