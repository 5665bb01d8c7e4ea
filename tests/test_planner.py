"""The power planner: variance components from a pilot (statsmodels' mixed model), the half-width
and detectable effect of a design checked against simulation, and `python -m reprolib plan`:
its table, the design it picks, its prices, and its one-line refusals."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from reprolib.cli import main
from reprolib.config import load_profile
from reprolib.study.ledger import build_ledger, write_ledger
from reprolib.study.power import Variance, components, detectable, half_width
from reprolib.study.stats import Interval, two_level_interval
from reprolib.study.verdicts import Part
from reprolib.sweep import planner
from reprolib.sweep.planner import plan
from synthetic_study import write_synthetic_study

REPO = Path(__file__).resolve().parent.parent


def _part(values: np.ndarray, clusters: np.ndarray) -> Part:
    interval = two_level_interval(values, clusters)
    return Part("p", 0.0, interval, interval, 1.0, (values, clusters))


def _units(rng, replicates: int, seeds: int, within: float, between: float, mean: float = 0.0):
    clusters = np.repeat(np.arange(replicates), seeds)
    values = mean + np.repeat(rng.normal(0.0, between, replicates), seeds) + rng.normal(0.0, within, replicates * seeds)
    return values, clusters


def test_components_recover_the_planted_variances() -> None:
    rng = np.random.default_rng(0)
    v = components([_part(*_units(rng, 40, 4, within=1.0, between=2.0))], "pilot")
    assert v.within == pytest.approx(1.0, abs=0.15) and v.between == pytest.approx(2.0, abs=0.5)
    assert (v.replicates, v.units, v.source) == (40, 160, "pilot")
    one = components([_part(*_units(rng, 1, 6, within=1.0, between=0.0))], "one replicate")
    assert one.between is None and one.within > 0                      # no ticket-to-ticket variance from one


def test_half_width_and_detectable_effect_match_simulation() -> None:
    """The predicted half-width is the mean half-width of the two-level interval on simulated designs,
    and an effect `detectable` beyond the margin is declared "holds" about 80% of the time."""
    rng = np.random.default_rng(1)
    v = Variance(within=2.0, between=1.0, replicates=8, units=24, source="s")
    predicted = half_width(v, 6, 3)
    realised = [two_level_interval(*_units(rng, 6, 3, 2.0, 1.0)).half_width for _ in range(600)]
    assert np.mean(realised) == pytest.approx(predicted, rel=0.1)
    shift = detectable(v, 6, 3)
    holds = [two_level_interval(*_units(rng, 6, 3, 2.0, 1.0, mean=shift)).low > 0 for _ in range(600)]
    assert np.mean(holds) == pytest.approx(0.8, abs=0.05)
    seeds_only = Variance(within=1.0, between=None, replicates=1, units=3, source="s")
    assert detectable(seeds_only, 1, 3) == pytest.approx(3.26, abs=0.01)   # the audit: 3.26 sd at n=3
    assert half_width(seeds_only, 1, 3) == pytest.approx(2.48, abs=0.01)   # and +-2.48 sd
    assert half_width(v, 6, 3, cells=32) > half_width(v, 6, 3)              # claim 3's correction


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    return tmp_path


def _study(home: Path, name: str = "smoke", **kwargs) -> Path:
    artifacts = load_profile(name).path("artifacts")
    write_synthetic_study(artifacts, arms=("lp", "vp/ilm"), **kwargs)
    write_ledger(build_ledger(artifacts), artifacts)
    return artifacts


def test_plan_reads_a_replicated_pilot_and_picks_the_cheapest_design_that_decides(home, capsys) -> None:
    _study(home, seeds=(1, 2, 3), noise=0.01, replicates=4, replicate_noise=0.01, n_shots=(5, -1))
    table = plan(load_profile("smoke"))
    assert table["claim"].tolist() == ["1", "1", "2", "2", "3"]
    assert table["pilot"].str.startswith("smoke ledger").all() and table.attrs["unit"] == "CPU-minutes"
    # claim 3: the Bonferroni model, scaled so that at the pilot's own design it gives the widest of
    # the cells' max-T intervals that the analysis measured
    pilot, _ = planner.pilot_claims(load_profile("smoke"))[2]
    parts = pilot.evaluate(pilot.cells, True)[0]
    r0, s0, _ = planner._units(pilot)
    v, m = components(parts, "pilot"), len(pilot.shifts)
    scale = planner._max_t_scale(parts, v, pilot, m)
    assert scale * half_width(v, r0, s0, m) == pytest.approx(max(p.interval.half_width for p in parts))
    assert scale != 1.0 and table.iloc[4]["pilot"] == f"smoke ledger, max-T x {scale:.2f}"
    gap = table.iloc[0]
    assert gap["part"] == "gap" and gap["design now"] == "1 x 1 (1 units)"   # smoke's grid: one seed
    r, s = (int(x) for x in gap["decides at"].split(" x "))
    assert float(gap["half-width"]) <= 2.0 and r >= 2
    # the cost: the claim's cells (smoke: 1 target x LP, VP x dense, level 2 x 5-shot, full) at 1.5 s a run
    assert float(gap["cost"]) == pytest.approx(8 * r * s * 1.5 / 60 + (r - 1) * 2 * 10.0 / 60, rel=1e-3)
    assert main(["plan", "--profile", "smoke"]) == 0
    assert "power plan for smoke (costs in CPU-minutes)" in capsys.readouterr().out


def test_plan_refuses_in_one_line(home, capsys, tmp_path) -> None:
    artifacts = _study(home, seeds=(1, 2, 3), noise=0.01)                 # one replicate
    assert main(["plan", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: claim 1 (gap): the pilot (smoke ledger) has one ticket replicate") and "\n" not in err
    lp_only = build_ledger(artifacts)
    lp_only = lp_only[lp_only["arm"] == "lp"]
    lp_only.to_csv(tmp_path / "lp.csv", index=False)
    assert main(["plan", "--profile", "smoke", "--pilot", str(tmp_path / "lp.csv")]) == 2
    assert "claim 1: its cells are missing from every pilot ledger" in capsys.readouterr().err
    shutil.rmtree(artifacts)
    _study(home, seeds=(1, 2, 3), noise=0.01, replicates=4, replicate_noise=0.01)
    assert main(["plan", "--profile", "smoke", "--budget", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "claim 1 (gap): half-width 2 needs" in err and "the grid would cost" in err
    assert "CPU-minutes (its cells add" in err and "over the budget of 0.01" in err


def test_gpu_profiles_borrow_their_variances_and_price_gpu_hours(home) -> None:
    for study in ("embedded", "imagenet-lite"):
        target = load_profile(study).path("artifacts")
        target.mkdir(parents=True)
        shutil.copy(REPO / "artifacts" / study / "ledger.csv", target / "ledger.csv")
    table = plan(load_profile("paper-headline"))
    assert table.attrs["unit"] == "GPU-hours"
    assert table["pilot"].str.match(r"borrowed from (embedded|imagenet-lite)").all()
    assert table.loc[table["claim"] == "2", "pilot"].str.startswith("borrowed from imagenet-lite").all()   # one-shot LP/VP
    # an average over the pilot's cells is scaled to the profile's (paper-headline's claim 1: 2 targets x 3
    # n-shots, 1, 10 and full): sd x sqrt(pilot's cells / 6), the pilot's cells counted from its own claim;
    # the pilot is the nearest study that tests claim 1 (imagenet-lite, an ImageNet source, with its full-data runs)
    pilot, label = planner.pilot_claims(load_profile("paper-headline"))[0]
    assert label == "borrowed from imagenet-lite"
    assert table.loc[0, "pilot"] == f"{label}, sd x {math.sqrt(planner._averaged(pilot) / 6):.2f} for 6 cells"
    assert table["sd tickets"].eq("n/a (one-shot: 1 replicate)").all()
    assert table["design now"].eq("1 x 3 (3 units)").all()
    decided = table[table["decides at"].str.match(r"1 x \d+$")]
    assert len(decided) and (decided["half-width"].astype(float) <= [2.0 if c == "1" else 0.01 if c == "2" else 5.0
                                                                      for c in decided["claim"]]).all()


def test_a_clone_prices_a_ticket_replicate_from_the_shipped_tickets_table(home) -> None:
    """A clone holds tickets.csv, not the ticket folders: a replicate is priced from the table."""
    import pandas as pd

    profile = load_profile("embedded")
    target = profile.path("artifacts")
    target.mkdir(parents=True)
    assert math.isnan(planner._replicate_seconds(profile))   # no tickets at all: not priced
    shutil.copy(REPO / "artifacts" / "embedded" / "tickets.csv", target / "tickets.csv")
    table = pd.read_csv(target / "tickets.csv")
    levels = table[(table["ticket_kind"] == "imp") & (table["level"] > 0)]["train_cpu_seconds"]
    assert planner._replicate_seconds(profile) == pytest.approx(levels.mean() * max(profile.levels))
