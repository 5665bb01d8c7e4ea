"""The RLT paper's three qualitative claims as precise tests on our ledger, judged by intervals.

Each claim becomes one row: the claim, the exact test statement (which says the test in
words), the numbers behind it, each with its 95% interval and n, and a verdict from those
intervals (docs/methods.md s.12): "holds" only when the interval of the claim's effect lies
wholly above the claim's margin, "does not hold" when it lies wholly below it (inside the
opposite side of the margin), "inconclusive" otherwise (the interval straddles the margin, or
data are missing). Effects are paired: the dense model and its tickets in one (target, arm,
n-shot) cell share each seed's few-shot draw, so every effect is computed seed by seed (means
over targets within a seed, every target weighing the same) and its interval is the t
interval over the seeds all cells share; with fewer than two such seeds it is an image
bootstrap (test-image noise only, named so). Claim 3 takes the worst of many cells and is
corrected for it by Holm (see claim_not_universal). Accuracy differences are in percentage
points. The thresholds are module constants so the statements and the code cannot disagree.

`null_holds_rate` tests the tests: on null ledgers (effects.null_ledger: dense and ticket
results permuted within each paired cell) each claim should say "holds" in at most
NULL_LIMIT of the draws.

Which networks count as tickets (the ledger's `provenance`, reprolib.sparsity.network):
`claims_table` judges the claims on TICKETS WITH A MEASURED UPSTREAM ACCURACY only: the
IMP tickets made here (provenance "here"; the embedded study measures Fashion-MNIST
accuracy for each), else imported tickets whose ImageNet top-1 was measured (`tickets
evaluate --imagenet`). When no ticket has one, every verdict is "upstream not measured":
claim 3 is about tickets of similar upstream accuracy, and claims 1 and 2 compare dense
models with tickets, which a damaged network is not known not to be. Networks pruned once
and never retrained (provenance "oneshot", e.g. the paper profile without ImageNet, or an
EfficientNet pruned one-shot) are not tickets: `oneshot_table` reports the same three
tests on them under their own heading, with verdicts for claims 1 and 2 (the numbers are
what they are, labelled as one-shot networks) and "upstream not measured" for claim 3
unless their upstream accuracy was measured. A ledger saved before provenance existed
is read as before: every ticket was made here.
"""


from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reprolib.study.effects import CellValues, Cells, cell_difference, cell_values, effect_interval, null_ledger
from reprolib.errors import check_type
from reprolib.study.stats import Interval, holm, simultaneous_confidence, t_interval
from reprolib.transfer import registry as method_registry

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
NOT_MEASURED = "upstream not measured"
VERDICTS = (HOLDS, FAILS, UNSURE, NOT_MEASURED)
TICKET_PROVENANCES = ("here", "imported")   # in this order of preference; never mixed in one table
ONESHOT = "oneshot"
DROP_MARGIN = 2.0          # claim 1: VP's drop must exceed LP's by more than this (points)
FEW_SHOT_MAX = 10          # claim 1: n_shot <= this counts as few-shot
ECE_SHARE = 0.75           # claim 2: share of (target, n-shot) cells where dense ECE < tickets' ECE
ECE_MARGIN = 0.0           # claim 2: the tickets' mean ECE must exceed the dense model's by more than this
UPSTREAM_SIMILAR = 2.0     # claim 3: a ticket within this of dense upstream accuracy (points)
REPROGRAM_GAP = 5.0        # claim 3: "much worse" = this many points below dense
COLUMNS = ["claim", "statement", "numbers", "verdict"]
TEST_WORDS = ("Test: each effect is computed seed by seed and its 95% interval is Student's t over the seeds "
              "(a bootstrap of the test images where a cell has one seed). Holds when")
NULL_DRAWS = 200           # null ledgers per claim in null_holds_rate
NULL_LIMIT = 0.05          # the most often a claim may say "holds" on null ledgers
NULL_COLUMNS = ["id", "target", "arm", "network", "provenance", "ticket_kind", "level", "density", "n_shot", "seed",
                "upstream_accuracy", "accuracy", "ece", "reliability"]
NULL_RATE_COLUMN = "holds on null ledgers"   # the column notebook 09 adds beside each verdict


@dataclass(frozen=True)
class SparseNames:
    """What a claim's statement and numbers call the sparse networks it tests (the tests read
    every kind through networks_view, which files them under ticket_kind "imp")."""

    singular: str
    plural: str
    article: str   # "a" / "an" before `singular`
    level: str     # "<level> 4": the sparsity level of these networks


IMP_TICKETS = SparseNames("IMP ticket", "IMP tickets", "an", "IMP level")
IMPORTED_TICKETS = SparseNames("imported ticket", "imported tickets", "an", "imported ticket at profile level")
ONESHOT_NETWORKS = SparseNames("one-shot pruned network", "one-shot pruned networks", "a", "one-shot magnitude level")
NAMES_BY_PROVENANCE = {"here": IMP_TICKETS, "imported": IMPORTED_TICKETS}   # claims_table's TICKET_PROVENANCES


def judge(*tests: tuple[Interval, float]) -> str:
    """The verdict of a claim that needs every (effect interval, margin) pair: "holds" when each
    interval lies wholly above its margin, "does not hold" when any lies wholly below its margin,
    "inconclusive" otherwise (an interval straddles its margin, or there is none)."""
    if tests and all(interval.clears(margin) for interval, margin in tests):
        return HOLDS
    if any(interval.below(margin) for interval, margin in tests):
        return FAILS
    return UNSURE


def _lp_arm() -> str:
    """The arm of the claims' probe method (the method registry's role "probe": LP)."""
    return method_registry.role_method("probe").arms[0].name


def _vp_arm(ledger: pd.DataFrame) -> str | None:
    """The claims' prompt arm: the first arm of the registry's "prompt" method (VP-ILM) when the
    ledger has it, else that method's first arm in the ledger by name."""
    vp = method_registry.role_method("prompt")
    arms = [a for a in ledger["arm"].unique() if method_registry.method_of_arm(a) is vp]
    first = vp.arms[0].name
    return first if first in arms else (sorted(arms)[0] if arms else None)


def _is_prompt_arm(arm: str) -> bool:
    """Whether `arm` belongs to a method that learns an input prompt (MethodSpec.input_prompt)."""
    spec = method_registry.method_of_arm(arm)
    return spec is not None and spec.input_prompt


def _sparsest_level(ledger: pd.DataFrame) -> int:
    """The "imp" level of lowest mean density (IMP: the highest level), 0 when there is none."""
    imp = ledger[(ledger["ticket_kind"] == "imp") & (ledger["level"] > 0)]
    if not len(imp):
        return 0
    if imp["density"].isna().all():
        return int(imp["level"].max())
    return int(imp.groupby("level")["density"].mean().idxmin())


def _drop(table: CellValues, arm: str, sparse: int, regime: str) -> np.ndarray:
    """Accuracy drop in points dense -> level `sparse`, per sample, mean over the targets that
    have both cells (NaN when none has)."""
    targets = sorted({key[0] for key in table})
    drops = [table[(t, arm, 0, regime)] - table[(t, arm, sparse, regime)] for t in targets
             if (t, arm, 0, regime) in table and (t, arm, sparse, regime) in table]
    return 100.0 * np.mean(drops, axis=0) if drops else np.array([np.nan])


def _regimes(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows labelled "full" (full data) or "few" (0 < n_shot <= FEW_SHOT_MAX); others dropped."""
    few = (rows["n_shot"] > 0) & (rows["n_shot"] <= FEW_SHOT_MAX)
    regime = np.where(rows["n_shot"] == -1, "full", np.where(few, "few", ""))
    return rows.assign(regime=regime)[regime != ""]


def claim_lp_robust(ledger: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> dict[str, str]:
    """Claim 1: LP is robust to sparsity while VP drops, most in the few-shot regime.

    Two paired effects, each a mean over targets computed per seed: VP's drop (dense ->
    sparsest level, full data) minus LP's, and VP's few-shot drop minus its full-data drop."""
    lp, vp, sparse = _lp_arm(), _vp_arm(ledger), _sparsest_level(ledger)
    statement = (f"the accuracy drop dense -> {names.level} {sparse} (full data, mean over targets, paired by seed) of "
                 f"{vp or 'VP'} exceeds LP's by > {DROP_MARGIN:g} points, and {vp or 'VP'}'s drop is larger at "
                 f"n_shot <= {FEW_SHOT_MAX} than at full data. {TEST_WORDS} both 95% intervals lie above their "
                 f"margins ({DROP_MARGIN:g} and 0 points); does not hold when either lies below its margin")
    row = {"claim": "1. LP is robust to sparsity while VP drops, most in few-shot", "statement": statement}
    if vp is None or lp not in set(ledger["arm"]) or sparse == 0:
        return row | {"numbers": f"needs LP and VP runs at level 0 and a sparser {names.level}", "verdict": UNSURE}
    rows = ledger[(ledger["ticket_kind"] == "imp") & ledger["arm"].isin([lp, vp]) & ledger["level"].isin([0, sparse])]
    cells = Cells(_regimes(rows), ["target", "arm", "level", "regime"], "accuracy")

    def interval(effect) -> Interval:
        return effect_interval(cells, effect)

    gap = interval(lambda t: _drop(t, vp, sparse, "full") - _drop(t, lp, sparse, "full"))
    excess = interval(lambda t: _drop(t, vp, sparse, "few") - _drop(t, vp, sparse, "full"))
    drops = {f"{arm} {regime}": interval(lambda t, a=arm, r=regime: _drop(t, a, sparse, r))
             for arm, regime in ((lp, "full"), (vp, "full"), (lp, "few"), (vp, "few"))}
    numbers = (f"{vp} drop minus LP's (full data): {gap.text()}; {vp} drop at n_shot<={FEW_SHOT_MAX} minus at full "
               f"data: {excess.text()}; drops: " + ", ".join(f"{k} {v.text()}" for k, v in drops.items()))
    return row | {"numbers": numbers, "verdict": judge((gap, DROP_MARGIN), (excess, 0.0))}


def _ece_gaps(table: CellValues) -> dict[tuple, np.ndarray]:
    """(target, n-shot) -> per sample, mean ECE of the tickets minus the dense model's, for the
    cells that have both."""
    gaps = {}
    for target, n_shot in sorted({(t, n) for t, n, _ in table}):
        tickets = [v for (t, n, level), v in table.items() if (t, n) == (target, n_shot) and level > 0]
        if tickets and (target, n_shot, 0) in table:
            gaps[(target, n_shot)] = np.mean(tickets, axis=0) - table[(target, n_shot, 0)]
    return gaps


def _mean_ece_gap(table: CellValues) -> np.ndarray:
    gaps = list(_ece_gaps(table).values())
    return np.mean(gaps, axis=0) if gaps else np.array([np.nan])


def _dense_vs_tickets_ece(ledger: pd.DataFrame, arm: str) -> tuple[Interval, float, int]:
    """(interval of the mean over cells of the ECE gap tickets - dense, share of cells where the
    dense seed-mean ECE is lower, number of cells)."""
    rows = ledger[(ledger["arm"] == arm) & (ledger["ticket_kind"] == "imp") & ledger["ece"].notna()]
    cells = Cells(rows, ["target", "n_shot", "level"], "ece")
    level = cells.seeds.index.get_level_values("level")
    if not ((level == 0).any() and (level > 0).any()):
        return t_interval([]), float("nan"), 0
    per_cell = np.array([g[0] for g in _ece_gaps(cell_values(cells.seeds.mean(axis=1).to_frame())).values()])
    per_cell = per_cell[~np.isnan(per_cell)]
    interval = effect_interval(cells, _mean_ece_gap)
    return interval, float((per_cell > 0).mean()) if len(per_cell) else float("nan"), len(per_cell)


def claim_dense_calibrated(ledger: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> dict[str, str]:
    """Claim 2: dense models are better calibrated (lower ECE) than their tickets, under LP and VP."""
    vp = _vp_arm(ledger)
    statement = (f"for both LP and {vp or 'VP'}, the mean ECE of the {names.plural} exceeds the dense model's "
                 f"(mean over (target, n-shot) cells, paired by seed), and the dense ECE is lower in >= "
                 f"{ECE_SHARE:.0%} of the cells. {TEST_WORDS} both arms' 95% intervals of the gap lie above "
                 f"{ECE_MARGIN:g} and the share is met; does not hold when either arm's interval lies below {ECE_MARGIN:g}")
    row = {"claim": "2. Dense models are better calibrated than lottery tickets (LP and VP)", "statement": statement}
    results = {arm: _dense_vs_tickets_ece(ledger, arm) for arm in (_lp_arm(), vp) if arm is not None}
    if len(results) < 2 or any(n == 0 for _, _, n in results.values()):
        return row | {"numbers": "needs LP and VP runs on dense and ticket networks", "verdict": UNSURE}
    numbers = "; ".join(f"{arm}: ECE gap (tickets - dense) {gap.text(3, signed=True)}, dense lower in {share:.0%} "
                        f"of {n} cells" for arm, (gap, share, n) in results.items())
    verdict = judge(*[(gap, ECE_MARGIN) for gap, _, _ in results.values()])
    if verdict == HOLDS and any(share < ECE_SHARE for _, share, _ in results.values()):
        verdict = UNSURE   # every interval clears, but dense is not lower in enough cells
    return row | {"numbers": numbers, "verdict": verdict}


def _upstream_by_level(runs: pd.DataFrame) -> pd.Series:
    return runs.groupby("level")["upstream_accuracy"].first() * 100.0


def _gap_cells(runs: pd.DataFrame, similar: list[int]) -> list[tuple[tuple, Interval, float]]:
    """((target, arm, level), interval of dense - ticket accuracy in points, one-sided p of > gap)
    for every prompt-method cell of the similar tickets, each interval at the simultaneous
    confidence of all of them (Bonferroni, stats.simultaneous_confidence)."""
    dense = {key: group for key, group in runs[runs["level"] == 0].groupby(["target", "arm"])}
    tickets = runs[runs["level"].isin(similar)]
    pairs = [((t, a, lv), dense[(t, a)], g) for (t, a, lv), g in tickets.groupby(["target", "arm", "level"])
             if (t, a) in dense]
    confidence = simultaneous_confidence(len(pairs))
    return [(key, *cell_difference(d, g, "accuracy", REPROGRAM_GAP, confidence)) for key, d, g in pairs]


def claim_not_universal(ledger: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> dict[str, str]:
    """Claim 3: for some targets a ticket reprograms much worse than dense despite similar upstream accuracy.

    Taking the worst of m noisy cells is corrected by Holm over the cells rather than a
    max-statistic permutation test: with the 2-3 seeds a cell has here, a permutation of seeds
    has 4-8 arrangements and cannot reach a 5% tail, and cells run with one seed (image
    bootstrap) cannot be permuted over seeds at all; Holm needs only each cell's own test. For
    "at least one cell" Holm decides at its first step, so the verdict reads the worst cells'
    intervals at confidence 1 - 0.05/m (Bonferroni), which hold for all m cells together."""
    statement = (f"for at least one target, {names.article} {names.singular} within {UPSTREAM_SIMILAR:g} points of the "
                 f"dense upstream accuracy reprograms (prompt methods, full data) more than {REPROGRAM_GAP:g} points "
                 f"worse than dense (paired by seed). Taking the worst of m (target, prompt method, ticket) cells is "
                 f"corrected by Holm. {TEST_WORDS} some cell's interval at confidence 1 - 0.05/m (all m together at "
                 f"95%) lies above {REPROGRAM_GAP:g} points; does not hold when every cell's lies below it")
    row = {"claim": "3. Lottery tickets are not universal reprogrammers", "statement": statement}
    imp = ledger[(ledger["ticket_kind"] == "imp") & ledger["arm"].map(_is_prompt_arm).astype(bool)]
    if "upstream_accuracy" not in imp or imp["upstream_accuracy"].isna().all():
        return row | {"numbers": "needs upstream accuracy per ticket (tickets' sparsity.json)", "verdict": UNSURE}
    runs = imp[imp["n_shot"] == -1] if (imp["n_shot"] == -1).any() else imp
    upstream = _upstream_by_level(runs)
    if 0 not in upstream.index:
        return row | {"numbers": "needs dense (level 0) runs", "verdict": UNSURE}
    if pd.isna(upstream[0]):
        return row | {"numbers": "the dense network's upstream accuracy is not measured", "verdict": NOT_MEASURED}
    similar = [lv for lv, acc in upstream.items() if lv > 0 and abs(acc - upstream[0]) <= UPSTREAM_SIMILAR]
    cells = _gap_cells(runs, similar)
    if not cells:
        return row | {"numbers": f"no {names.singular} within the upstream-accuracy margin of dense "
                                 f"(upstream: {', '.join(f'L{lv} {a:.1f}' for lv, a in upstream.items())})",
                      "verdict": UNSURE}
    worst = {}
    for (target, arm, level), interval, _ in cells:
        if target not in worst or interval.mean > worst[target][0].mean:
            worst[target] = (interval, arm, level)
    rejected = holm([p for _, _, p in cells])
    numbers = "; ".join(f"{t}: worst gap {i.text()} ({a}, level {lv})" for t, (i, a, lv) in worst.items())
    numbers += (f"; cells clearing {REPROGRAM_GAP:g} points under Holm: {int(rejected.sum())} of m={len(cells)}; "
                f"tickets compared: levels {similar} (upstream {', '.join(f'{upstream[lv]:.1f}' for lv in similar)} "
                f"vs dense {upstream[0]:.1f})")
    intervals = [interval for _, interval, _ in cells]
    verdict = (HOLDS if any(i.clears(REPROGRAM_GAP) for i in intervals)
               else FAILS if all(i.below(REPROGRAM_GAP) for i in intervals) else UNSURE)
    return row | {"numbers": numbers, "verdict": verdict}


def _claims(view: pd.DataFrame, names: SparseNames) -> list[dict[str, str]]:
    return [claim_lp_robust(view, names), claim_dense_calibrated(view, names), claim_not_universal(view, names)]


def networks_view(ledger: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """The dense runs plus the sparse networks of one provenance, as the claims read them
    (ticket_kind "imp"; imported tickets keep their place in the profile as "level").
    One-shot networks: the magnitude-pruned ones (random pruning is a baseline, not a ticket)."""
    if "provenance" not in ledger:   # a ledger saved before provenance: all tickets were made here
        return ledger if provenance == "here" else ledger.iloc[0:0]
    dense = ledger[ledger["network"] == "dense"]
    sparse = ledger[(ledger["network"] != "dense") & (ledger["provenance"] == provenance)]
    if provenance == ONESHOT:
        sparse = sparse[sparse["ticket_kind"] == "magnitude"]
    if provenance != "here":
        sparse = sparse.assign(ticket_kind="imp")
    return pd.concat([dense, sparse]).sort_index()


def _measured(view: pd.DataFrame) -> pd.DataFrame | None:
    """The view with only the tickets whose upstream accuracy was measured (None: there are none)."""
    sparse = (view["ticket_kind"] == "imp") & (view["level"] > 0)
    measured = view["upstream_accuracy"].notna()
    if not (sparse & measured).any():
        return None
    return view[~sparse | measured]


def _not_measured(rows: list[dict[str, str]], why: str) -> list[dict[str, str]]:
    return [row | {"numbers": why, "verdict": NOT_MEASURED} for row in rows]


def claims_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (claim, statement, numbers, verdict), judged on tickets with a measured
    upstream accuracy: the IMP tickets made here, else imported tickets; see the module doc."""
    check_type("ledger", ledger, pd.DataFrame)
    for provenance in TICKET_PROVENANCES:
        view = networks_view(ledger, provenance)
        if ((view["ticket_kind"] == "imp") & (view["level"] > 0)).any():
            measured = _measured(view)
            names = NAMES_BY_PROVENANCE[provenance]
            if measured is None:
                rows = _not_measured(_claims(view, names), f"no {provenance} ticket has a measured upstream accuracy "
                                                    "(`python -m reprolib tickets evaluate --imagenet DIR`)")
            else:
                rows = _claims(measured, names)
            return pd.DataFrame(rows, columns=COLUMNS)
    rows = _claims(networks_view(ledger, "here"), IMP_TICKETS)   # no sparse network at all: missing data, inconclusive
    if len(oneshot_table(ledger)):
        rows = _not_measured(rows, "no ticket with a measured upstream accuracy in the ledger; its sparse networks "
                                   "are one-shot pruned, not retrained (reported separately, not as tickets)")
    return pd.DataFrame(rows, columns=COLUMNS)


def oneshot_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """The three tests on networks pruned once and NOT retrained (not tickets), claim names
    marked so; claim 3 is "upstream not measured" unless their upstream accuracy was. Empty
    when the ledger has no one-shot networks."""
    check_type("ledger", ledger, pd.DataFrame)
    view = networks_view(ledger, ONESHOT)
    if not ((view["ticket_kind"] == "imp") & (view["level"] > 0)).any():
        return pd.DataFrame(columns=COLUMNS)
    names = ONESHOT_NETWORKS
    rows = [claim_lp_robust(view, names), claim_dense_calibrated(view, names)]
    measured = _measured(view)
    third = claim_not_universal(measured, names) if measured is not None else _not_measured(
        [claim_not_universal(view.iloc[0:0], names)], "one-shot networks' upstream accuracy is not measured")[0]
    label = " [one-shot pruned, not retrained: not tickets]"
    return pd.DataFrame([row | {"claim": row["claim"] + label} for row in [*rows, third]], columns=COLUMNS)


def null_holds_rate(ledger: pd.DataFrame, draws: int = NULL_DRAWS, seed: int = 0,
                    table: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """How often each claim of `table` (claims_table, or oneshot_table) says "holds" on `draws`
    null ledgers (effects.null_ledger: dense and sparse results permuted within each paired
    cell, so the network makes no difference): one row per claim with the count, the rate, and
    whether it is within NULL_LIMIT. Seeded: the same ledger gives the same rates."""
    check_type("ledger", ledger, pd.DataFrame)
    check_type("draws", draws, int)
    table = claims_table if table is None else table
    rng = np.random.default_rng(seed)
    ledger = ledger[[c for c in NULL_COLUMNS if c in ledger]]   # what the claims read, as plain
    ledger = ledger.astype({c: object for c in ledger.columns if ledger[c].dtype == "string"})   # objects: faster draws
    observed = table(ledger)
    names = observed["claim"].tolist()
    holds = np.zeros(len(names), dtype=int)
    # "upstream not measured" depends on the tickets, which a null ledger keeps: no draw can hold.
    for _ in range(0 if (observed["verdict"] == NOT_MEASURED).all() else draws):
        holds += (table(null_ledger(ledger, rng))["verdict"] == HOLDS).to_numpy()
    rate = holds / max(draws, 1)
    return pd.DataFrame({"claim": names, "holds_in_null": holds, "draws": draws, "rate": rate,
                         "within_limit": rate <= NULL_LIMIT})
