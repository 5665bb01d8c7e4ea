"""The paper's three claims as tests: each builder reads a ledger view (claims.networks_view)
and returns a verdicts.Claim, its unit tables and how to judge them (docs/methods.md s.12).

1. `claim_lp_robust`: VP's accuracy drop dense -> sparsest ticket exceeds LP's by > DROP_MARGIN
   points (full data), and VP's few-shot drop exceeds its full-data drop.
2. `claim_dense_calibrated`: the tickets' mean ECE exceeds the dense model's by > ECE_MARGIN,
   for LP and for VP, with the dense ECE lower in >= ECE_SHARE of the (target, n-shot) cells.
3. `gap_claim`: some ticket within UPSTREAM_SIMILAR points of the dense upstream accuracy
   reprograms > REPROGRAM_GAP points worse than dense (prompt methods, full data), the worst of
   m cells corrected by max-T sign flips over the ticket replicates (stats.max_t_bounds).
The thresholds are module constants so the statements and the code cannot disagree. Every
effect is computed per unit (one seed of one ticket replicate) from the unit tables
(effects.Cells); a claim whose cells the study lacks is "not testable here", saying what is
missing. Each claim also says how to move each of its parts (`Claim.shifts`), which the null
tests at the margin use.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from reprolib.study.effects import (Cells, CellValues, cell_difference, cell_values, effect_interval, effect_intervals,
                                   effect_units)
from reprolib.study.stats import CONFIDENCE, max_t_bounds, simultaneous_confidence
from reprolib.study.verdicts import HOLDS, IMP_TICKETS, UNSURE, Claim, Part, SparseNames, judge
from reprolib.transfer import registry as method_registry

DROP_MARGIN = 2.0          # claim 1: VP's drop must exceed LP's by more than this (points)
FEW_SHOT_MAX = 10          # claim 1: n_shot <= this counts as few-shot
ECE_SHARE = 0.75           # claim 2: share of (target, n-shot) cells where dense ECE < tickets' ECE
ECE_MARGIN = 0.0           # claim 2: the tickets' mean ECE must exceed the dense model's by more than this
UPSTREAM_SIMILAR = 2.0     # claim 3: a ticket within this of dense upstream accuracy (points)
REPROGRAM_GAP = 5.0        # claim 3: "much worse" = this many points below dense
# The half-width each claim's interval must reach to decide (the power planner's targets): claim 1
# its margin in points, claim 2 a hundredth of ECE, claim 3 (each cell, under its correction) its margin.
DROP_WIDTH, ECE_WIDTH, GAP_WIDTH = DROP_MARGIN, 0.01, REPROGRAM_GAP
TEST_WORDS = ("Test: each effect is computed unit by unit (a unit: one seed of one ticket replicate) and its 95% "
              "interval is two-level, clustered by ticket replicate (t over the seeds with one replicate; a "
              "bootstrap of the test images with one seed). Holds when")
FAIL_WORDS = "(Bonferroni over the parts: any one part errs at most 2.5% in all)"


def fail_confidence(parts: int) -> float:
    """The confidence of each part's interval in the "does not hold" check (1 - 0.05/k)."""
    return simultaneous_confidence(parts, CONFIDENCE)


def lp_arm() -> str:
    """The arm of the claims' probe method (the method registry's role "probe": LP)."""
    return method_registry.role_method("probe").arms[0].name


def vp_arm(ledger: pd.DataFrame) -> str | None:
    """The claims' prompt arm: the first arm of the registry's "prompt" method (VP-ILM) when the
    ledger has it, else that method's first arm in the ledger by name."""
    vp = method_registry.role_method("prompt")
    arms = [a for a in ledger["arm"].unique() if method_registry.method_of_arm(a) is vp]
    first = vp.arms[0].name
    return first if first in arms else (sorted(arms)[0] if arms else None)


def is_prompt_arm(arm: str) -> bool:
    """Whether `arm` belongs to a method that learns an input prompt (MethodSpec.input_prompt)."""
    spec = method_registry.method_of_arm(arm)
    return spec is not None and spec.input_prompt


def sparsest_level(ledger: pd.DataFrame) -> int:
    """The "imp" level of lowest mean density (IMP: the highest level), 0 when there is none."""
    imp = ledger[(ledger["ticket_kind"] == "imp") & (ledger["level"] > 0)]
    if not len(imp):
        return 0
    if imp["density"].isna().all():
        return int(imp["level"].max())
    return int(imp.groupby("level")["density"].mean().idxmin())


# -- claim 1 ---------------------------------------------------------------------------------
def _drop(table: CellValues, arm: str, sparse: int, shots: tuple[int, ...], targets: list[str]) -> np.ndarray:
    """Accuracy drop in points dense -> level `sparse`, per unit: mean over `shots`, then over `targets`."""
    return 100.0 * np.mean([np.mean([table[(t, arm, 0, s)] - table[(t, arm, sparse, s)] for s in shots], axis=0)
                            for t in targets], axis=0)


def _has(cells: Cells, target: str, arm: str, levels: tuple[int, ...], shot: int) -> bool:
    index = set(cells.seeds.index)
    return all((target, arm, level, shot) in index for level in levels)


def claim_lp_robust(view: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> Claim:
    """Claim 1: LP is robust to sparsity while VP drops, most in the few-shot regime. Two parts,
    each a mean over the targets that have every cell, computed per unit: VP's drop (dense ->
    sparsest level, full data) minus LP's, and VP's few-shot drop minus its full-data drop."""
    lp, vp, sparse = lp_arm(), vp_arm(view), sparsest_level(view)
    statement = (f"the accuracy drop dense -> {names.level} {sparse} (full data, mean over targets, paired) of "
                 f"{vp or 'VP'} exceeds LP's by > {DROP_MARGIN:g} points, and {vp or 'VP'}'s drop is larger at "
                 f"n_shot <= {FEW_SHOT_MAX} than at full data. {TEST_WORDS} both 95% intervals lie above their "
                 f"margins ({DROP_MARGIN:g} and 0 points); does not hold when either one's 97.5% interval lies "
                 f"below its margin {FAIL_WORDS}")
    row = {"claim": "1. LP is robust to sparsity while VP drops, most in few-shot", "statement": statement}
    if vp is None or lp not in set(view["arm"]) or sparse == 0:
        return Claim(row, why=f"needs LP and VP runs on the dense model and a sparser {names.level}")
    rows = view[(view["ticket_kind"] == "imp") & view["arm"].isin([lp, vp]) & view["level"].isin([0, sparse])]
    rows = rows[(rows["n_shot"] == -1) | ((rows["n_shot"] > 0) & (rows["n_shot"] <= FEW_SHOT_MAX))]
    cells = Cells(rows, ["target", "arm", "level", "n_shot"], "accuracy")
    targets = [t for t in sorted(set(rows["target"])) if all(_has(cells, t, a, (0, sparse), -1) for a in (lp, vp))]
    few = tuple(sorted(int(s) for s in rows["n_shot"].unique() if s > 0
                       and all(_has(cells, t, vp, (0, sparse), s) for t in targets)))
    if not targets or not few:
        missing = "full-data" if not targets else f"n_shot <= {FEW_SHOT_MAX}"
        ran = (rows["n_shot"] == -1).any() if not targets else (rows["n_shot"] > 0).any()
        if ran:   # the runs exist, on too few units beside the others (effects.best_covered)
            return Claim(row, why=f"its {missing} runs have fewer than half the (replicate, seed) units of its other "
                                  f"runs: run them on as many seeds")
        return Claim(row, why=f"no {missing} runs of LP and {vp} on both the dense model and {names.level} {sparse} "
                              f"(the claim compares their drops)")
    lp_few = tuple(s for s in few if all(_has(cells, t, lp, (0, sparse), s) for t in targets))
    evaluate = partial(_evaluate_lp_robust, lp=lp, vp=vp, sparse=sparse, targets=targets, few=few, lp_few=lp_few)
    is_vp_sparse = (lambda k: k["arm"] == vp and k["level"] == sparse)
    shifts = [[("accuracy", is_vp_sparse, -0.01)],                                   # gap (excess unchanged)
              [("accuracy", lambda k: is_vp_sparse(k) and k["n_shot"] > 0, -0.01)]]   # excess
    return Claim(row, cells={"accuracy": cells}, evaluate=evaluate, shifts=shifts)


def _evaluate_lp_robust(cells: dict, detail: bool, lp: str, vp: str, sparse: int, targets: list[str],
                        few: tuple[int, ...], lp_few: tuple[int, ...]) -> tuple[list[Part], str, str]:
    """Claim 1's parts, numbers and verdict. Many parameters because the claim fixes each on the ledger."""
    table = cells["accuracy"]
    def gap(t):
        return _drop(t, vp, sparse, (-1,), targets) - _drop(t, lp, sparse, (-1,), targets)

    def excess(t):
        return _drop(t, vp, sparse, few, targets) - _drop(t, vp, sparse, (-1,), targets)

    level = fail_confidence(2)
    parts = [Part(name, margin, *effect_intervals(table, effect, (CONFIDENCE, level)), DROP_WIDTH,
                  effect_units(table, effect) if detail else None)
             for name, margin, effect in (("gap", DROP_MARGIN, gap), ("excess", 0.0, excess))]
    verdict = judge(parts)
    if not detail:
        return parts, "", verdict
    drops = [(f"{arm} {label}", effect_interval(table, lambda t, a=arm, s=shots: _drop(t, a, sparse, s, targets)))
             for arm, label, shots in ((lp, "full", (-1,)), (vp, "full", (-1,)), (lp, "few", lp_few), (vp, "few", few))
             if shots]
    numbers = (f"{vp} drop minus LP's (full data): {parts[0].interval.text()}; {vp} drop at n_shot<={FEW_SHOT_MAX} "
               f"minus at full data: {parts[1].interval.text()}; drops: " + ", ".join(f"{k} {v.text()}" for k, v in drops)
               + f"; 97.5% upper bounds for 'does not hold': {parts[0].fail_interval.high:.1f} and "
               f"{parts[1].fail_interval.high:.1f}; targets {', '.join(targets)}, few-shot n_shot {list(few)}")
    return parts, numbers, verdict


# -- claim 2 ---------------------------------------------------------------------------------
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


def _dense_lower_share(cells: Cells) -> tuple[float, int]:
    """(share of (target, n-shot) cells whose dense mean ECE is below the tickets', number of cells)."""
    means = cells.seeds.mean(axis=1).to_frame()
    per_cell = np.array([g[0] for g in _ece_gaps(cell_values(means)).values()])
    per_cell = per_cell[~np.isnan(per_cell)]
    return (float((per_cell > 0).mean()) if len(per_cell) else float("nan")), len(per_cell)


def claim_dense_calibrated(view: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> Claim:
    """Claim 2: dense models are better calibrated (lower ECE) than their tickets, under LP and VP."""
    vp = vp_arm(view)
    statement = (f"for both LP and {vp or 'VP'}, the mean ECE of the {names.plural} exceeds the dense model's "
                 f"(mean over (target, n-shot) cells, paired), and the dense ECE is lower in >= {ECE_SHARE:.0%} "
                 f"of the cells. {TEST_WORDS} both arms' 95% intervals of the gap lie above {ECE_MARGIN:g} and the "
                 f"share is met; does not hold when either arm's 97.5% interval lies below {ECE_MARGIN:g} {FAIL_WORDS}")
    row = {"claim": "2. Dense models are better calibrated than lottery tickets (LP and VP)", "statement": statement}
    tables = {}
    for arm in (lp_arm(), vp):
        rows = view[(view["arm"] == arm) & (view["ticket_kind"] == "imp") & view["ece"].notna()] if arm else view.iloc[0:0]
        cells = Cells(rows, ["target", "n_shot", "level"], "ece")
        if not len(cells.seeds) or not _ece_gaps(cell_values(cells.seeds.mean(axis=1).to_frame())):
            return Claim(row, why=f"no {arm or 'VP'} runs on both the dense model and {names.plural} in a "
                                  "(target, n-shot) cell")
        tables[arm] = cells
    shifts = [[(arm, lambda k: k["level"] > 0, 1.0)] for arm in tables]
    return Claim(row, cells=tables, evaluate=_evaluate_calibrated, shifts=shifts)


def _evaluate_calibrated(cells: dict, detail: bool) -> tuple[list[Part], str, str]:
    level = fail_confidence(len(cells))
    parts = [Part(arm, ECE_MARGIN, *effect_intervals(c, _mean_ece_gap, (CONFIDENCE, level)), ECE_WIDTH,
                  effect_units(c, _mean_ece_gap) if detail else None) for arm, c in cells.items()]
    shares = {arm: _dense_lower_share(c) for arm, c in cells.items()}
    verdict = judge(parts)
    if verdict == HOLDS and any(share < ECE_SHARE for share, _ in shares.values()):
        verdict = UNSURE   # every interval clears, but dense is not lower in enough cells
    if not detail:
        return parts, "", verdict
    numbers = "; ".join(f"{p.name}: ECE gap (tickets - dense) {p.interval.text(3, signed=True)}, 97.5% upper "
                        f"{p.fail_interval.high:+.3f}, dense lower in {shares[p.name][0]:.0%} of {shares[p.name][1]} cells"
                        for p in parts)
    first = next(iter(cells.values())).seeds.index
    numbers += (f"; tickets at levels {sorted({int(lv) for lv in first.get_level_values('level') if lv > 0})}, "
                f"n_shot {sorted({int(n) for n in first.get_level_values('n_shot')})}")
    return parts, numbers, verdict


# -- claim 3 ---------------------------------------------------------------------------------
def gap_claim(view: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> Claim:
    """Claim 3: for some targets a ticket reprograms much worse than dense despite similar upstream
    accuracy. The parts are the (target, prompt arm, similar ticket) cells, dense minus ticket
    accuracy per unit, judged by simultaneous intervals (stats.max_t_bounds: max-T sign flips over
    the ticket replicates, or over the seeds with one replicate; Bonferroni t when the clusters
    are too few for a 2.5% tail; an image bootstrap with fewer than two units)."""
    statement = (f"for at least one target, {names.article} {names.singular} within {UPSTREAM_SIMILAR:g} points of the "
                 f"dense upstream accuracy reprograms (prompt methods, full data) more than {REPROGRAM_GAP:g} points "
                 f"worse than dense (paired). Taking the worst of m (target, prompt method, ticket) cells is corrected by "
                 f"a max-T sign-flip permutation over the ticket replicates (all m intervals hold together at 95%). "
                 f"{TEST_WORDS} some cell's simultaneous interval lies above {REPROGRAM_GAP:g} points; does not hold "
                 f"when every cell's lies below it")
    row = {"claim": "3. Lottery tickets are not universal reprogrammers", "statement": statement}
    imp = view[(view["ticket_kind"] == "imp") & view["arm"].map(is_prompt_arm).astype(bool)]
    if "upstream_accuracy" not in imp or imp["upstream_accuracy"].isna().all():
        return Claim(row, why="upstream accuracy not measured for any ticket (tickets' sparsity.json), and the claim "
                              "is about tickets of similar upstream accuracy")
    runs = imp[imp["n_shot"] == -1]
    if runs.empty or not (runs["level"] == 0).any():
        return Claim(row, why="no full-data prompt runs on the dense model and its tickets")
    upstream = runs.groupby("level")["upstream_accuracy"].mean() * 100.0
    if pd.isna(upstream[0]):
        return Claim(row, why="the dense network's upstream accuracy is not measured")
    similar = [lv for lv, acc in upstream.items() if lv > 0 and abs(acc - upstream[0]) <= UPSTREAM_SIMILAR]
    runs = runs[runs["level"].isin([0, *similar])]
    cells = Cells(runs, ["target", "arm", "level"], "accuracy")
    keys = [k for k in cells.seeds.index if k[2] > 0 and (k[0], k[1], 0) in set(cells.seeds.index)]
    if not keys:
        return Claim(row, why=f"no {names.singular} within {UPSTREAM_SIMILAR:g} points of the dense upstream accuracy "
                              f"(upstream: {', '.join(f'L{lv} {a:.1f}' for lv, a in upstream.items())})")
    compared = sorted({int(key[2]) for key in keys})   # the similar levels the design runs on most units
    context = (f"tickets compared: levels {compared} (upstream {', '.join(f'{upstream[lv]:.1f}' for lv in compared)} vs "
               f"dense {upstream[0]:.1f})")
    shifts = [[("accuracy", lambda k, c=key: (k["target"], k["arm"], k["level"]) == c, -0.01)] for key in keys]
    return Claim(row, cells={"accuracy": cells}, evaluate=partial(_evaluate_gaps, keys=keys, context=context),
                 shifts=shifts, every=False)


def _evaluate_gaps(cells: dict, detail: bool, keys: list[tuple], context: str) -> tuple[list[Part], str, str]:
    table = cells["accuracy"]
    values = table.seeds
    dense = values.index.get_indexer([(t, a, 0) for t, a, _ in keys])
    matrix = values.to_numpy(dtype=float)
    gaps = (matrix[dense] - matrix[values.index.get_indexer(keys)]).T * 100     # units x cells
    complete = ~np.isnan(gaps).any(axis=1)
    if complete.sum() >= 2:
        clusters = table.clusters[complete]
        clusters = clusters if len(set(clusters)) >= 2 else np.arange(int(complete.sum()))
        intervals = max_t_bounds(gaps[complete], clusters)
    else:   # fewer than two units: each cell's image bootstrap at the Bonferroni confidence
        level, rows = simultaneous_confidence(len(keys)), table.rows
        intervals = [cell_difference(rows[(rows["target"] == t) & (rows["arm"] == a) & (rows["level"] == 0)],
                                     rows[(rows["target"] == t) & (rows["arm"] == a) & (rows["level"] == lv)],
                                     "accuracy", REPROGRAM_GAP, level)[0] for t, a, lv in keys]
    units = [(gaps[complete, c], table.clusters[complete]) if detail else None for c in range(len(keys))]
    parts = [Part(f"{t} {a} level {lv}", REPROGRAM_GAP, i, i, GAP_WIDTH, u)
             for (t, a, lv), i, u in zip(keys, intervals, units)]
    verdict = judge(parts, every=False)
    if not detail:
        return parts, "", verdict
    worst = {}
    for (target, arm, level), part in zip(keys, parts):
        if target not in worst or part.interval.mean > worst[target][0].mean:
            worst[target] = (part.interval, arm, level)
    clearing = sum(p.interval.clears(REPROGRAM_GAP) for p in parts)
    numbers = "; ".join(f"{t}: worst gap {i.text()} ({a}, level {lv})" for t, (i, a, lv) in worst.items())
    numbers += f"; cells clearing {REPROGRAM_GAP:g} points together: {clearing} of m={len(parts)}; {context}"
    return parts, numbers, verdict
