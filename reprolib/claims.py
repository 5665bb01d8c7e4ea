"""The RLT paper's three qualitative claims as precise tests on our ledger.

Each claim becomes one row: the claim, the exact test statement, the numbers behind it and a
verdict, "holds" / "does not hold" / "inconclusive" (too little data, or a result inside the
margin between the two). Accuracy differences are in percentage points; means are taken
over seeds within a target first, then over targets, so every target weighs the same.
The thresholds are module constants so the statements and the code cannot disagree.

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

from dataclasses import dataclass

import pandas as pd

from reprolib.errors import check_type

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
NOT_MEASURED = "upstream not measured"
VERDICTS = (HOLDS, FAILS, UNSURE, NOT_MEASURED)
TICKET_PROVENANCES = ("here", "imported")   # in this order of preference; never mixed in one table
ONESHOT = "oneshot"
DROP_MARGIN = 2.0          # claim 1: VP's drop must exceed LP's by more than this (points)
FEW_SHOT_MAX = 10          # claim 1: n_shot <= this counts as few-shot
ECE_SHARE = 0.75           # claim 2: share of (target, n-shot) cells where dense ECE < tickets' ECE
UPSTREAM_SIMILAR = 2.0     # claim 3: a ticket within this of dense upstream accuracy (points)
REPROGRAM_GAP = 5.0        # claim 3: "much worse" = this many points below dense
COLUMNS = ["claim", "statement", "numbers", "verdict"]


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


def _vp_arm(ledger: pd.DataFrame) -> str | None:
    arms = [a for a in ledger["arm"].unique() if str(a).startswith("vp/")]
    return "vp/ilm" if "vp/ilm" in arms else (sorted(arms)[0] if arms else None)


def _mean_over_targets(rows: pd.DataFrame, metric: str) -> float:
    """Mean over targets of the per-target mean over seeds (NaN when there are no rows)."""
    return float(rows.groupby("target")[metric].mean().mean()) if len(rows) else float("nan")


def _drop(ledger: pd.DataFrame, arm: str, sparse_level: int, shots: pd.Series) -> float:
    """Accuracy drop in points, dense -> IMP `sparse_level`, for runs whose n_shot passes `shots`."""
    rows = ledger[(ledger["arm"] == arm) & (ledger["ticket_kind"] == "imp") & shots]
    dense = _mean_over_targets(rows[rows["level"] == 0], "accuracy")
    sparse = _mean_over_targets(rows[rows["level"] == sparse_level], "accuracy")
    return 100.0 * (dense - sparse)


def _sparsest_level(ledger: pd.DataFrame) -> int:
    """The "imp" level of lowest mean density (IMP: the highest level), 0 when there is none."""
    imp = ledger[(ledger["ticket_kind"] == "imp") & (ledger["level"] > 0)]
    if not len(imp):
        return 0
    if imp["density"].isna().all():
        return int(imp["level"].max())
    return int(imp.groupby("level")["density"].mean().idxmin())


def claim_lp_robust(ledger: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> dict[str, str]:
    """Claim 1: LP is robust to sparsity while VP drops, most in the few-shot regime."""
    vp = _vp_arm(ledger)
    sparse = _sparsest_level(ledger)
    statement = (f"mean accuracy drop dense -> {names.level} {sparse} (full data) of {vp or 'VP'} exceeds LP's by "
                 f"> {DROP_MARGIN:g} points, and {vp or 'VP'}'s drop is larger at n_shot <= {FEW_SHOT_MAX} "
                 "than at full data")
    row = {"claim": "1. LP is robust to sparsity while VP drops, most in few-shot", "statement": statement}
    if vp is None or "lp" not in set(ledger["arm"]) or sparse == 0:
        return row | {"numbers": f"needs LP and VP runs at level 0 and a sparser {names.level}", "verdict": UNSURE}
    full = ledger["n_shot"] == -1
    few = (ledger["n_shot"] > 0) & (ledger["n_shot"] <= FEW_SHOT_MAX)
    lp_full, vp_full = _drop(ledger, "lp", sparse, full), _drop(ledger, vp, sparse, full)
    vp_few, lp_few = _drop(ledger, vp, sparse, few), _drop(ledger, "lp", sparse, few)
    numbers = (f"full data: LP drop {lp_full:.1f}, {vp} drop {vp_full:.1f} (gap {vp_full - lp_full:.1f}); "
               f"n_shot<={FEW_SHOT_MAX}: LP drop {lp_few:.1f}, {vp} drop {vp_few:.1f}")
    if pd.isna(lp_full) or pd.isna(vp_full):
        return row | {"numbers": numbers, "verdict": UNSURE}
    gap = vp_full - lp_full
    more_in_few_shot = not pd.isna(vp_few) and vp_few > vp_full
    verdict = HOLDS if gap > DROP_MARGIN and more_in_few_shot else FAILS if gap <= 0 else UNSURE
    return row | {"numbers": numbers, "verdict": verdict}


def _dense_vs_tickets_ece(ledger: pd.DataFrame, arm: str) -> tuple[float, float, int]:
    """(share of cells with dense ECE < mean ticket ECE, mean gap tickets - dense, cells)."""
    rows = ledger[(ledger["arm"] == arm) & (ledger["ticket_kind"] == "imp")]
    cells = rows.assign(dense=rows["level"] == 0).groupby(["target", "n_shot", "dense"])["ece"].mean().unstack()
    if True not in cells or False not in cells:
        return float("nan"), float("nan"), 0
    cells = cells.dropna()
    gap = cells[False] - cells[True]
    return float((gap > 0).mean()), float(gap.mean()), len(cells)


def claim_dense_calibrated(ledger: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> dict[str, str]:
    """Claim 2: dense models are better calibrated (lower ECE) than their tickets, under LP and VP."""
    vp = _vp_arm(ledger)
    statement = (f"for both LP and {vp or 'VP'}, the dense model's ECE is below the mean ECE of its {names.plural} "
                 f"in >= {ECE_SHARE:.0%} of (target, n-shot) cells and on average")
    row = {"claim": "2. Dense models are better calibrated than lottery tickets (LP and VP)", "statement": statement}
    results = {arm: _dense_vs_tickets_ece(ledger, arm) for arm in ("lp", vp) if arm is not None}
    if len(results) < 2 or any(n == 0 for _, _, n in results.values()):
        return row | {"numbers": "needs LP and VP runs on dense and ticket networks", "verdict": UNSURE}
    numbers = "; ".join(f"{arm}: dense lower in {share:.0%} of {n} cells, mean ECE gap (tickets - dense) {gap:+.3f}"
                        for arm, (share, gap, n) in results.items())
    if all(share >= ECE_SHARE and gap > 0 for share, gap, _ in results.values()):
        verdict = HOLDS
    elif any(share < 0.5 and gap < 0 for share, gap, _ in results.values()):
        verdict = FAILS
    else:
        verdict = UNSURE
    return row | {"numbers": numbers, "verdict": verdict}


def claim_not_universal(ledger: pd.DataFrame, names: SparseNames = IMP_TICKETS) -> dict[str, str]:
    """Claim 3: for some targets a ticket reprograms much worse than dense despite similar upstream accuracy."""
    statement = (f"for at least one target, {names.article} {names.singular} within {UPSTREAM_SIMILAR:g} points "
                 f"of the dense upstream accuracy reprograms (prompt methods, full data) more than "
                 f"{REPROGRAM_GAP:g} points worse than dense; does not hold if every such gap is <= {UPSTREAM_SIMILAR:g} points")
    row = {"claim": "3. Lottery tickets are not universal reprogrammers", "statement": statement}
    imp = ledger[(ledger["ticket_kind"] == "imp") & (ledger["arm"] != "lp")]
    if "upstream_accuracy" not in imp or imp["upstream_accuracy"].isna().all():
        return row | {"numbers": "needs upstream accuracy per ticket (tickets' sparsity.json)", "verdict": UNSURE}
    runs = imp[imp["n_shot"] == -1] if (imp["n_shot"] == -1).any() else imp
    upstream = runs.groupby("level")["upstream_accuracy"].first() * 100.0
    if 0 not in upstream.index:
        return row | {"numbers": "needs dense (level 0) runs", "verdict": UNSURE}
    if pd.isna(upstream[0]):
        return row | {"numbers": "the dense network's upstream accuracy is not measured", "verdict": NOT_MEASURED}
    similar = [lv for lv, acc in upstream.items() if lv > 0 and abs(acc - upstream[0]) <= UPSTREAM_SIMILAR]
    if not similar:
        return row | {"numbers": f"no {names.singular} within the upstream-accuracy margin of dense "
                                 f"(upstream: {', '.join(f'L{lv} {a:.1f}' for lv, a in upstream.items())})",
                      "verdict": UNSURE}
    acc = runs.groupby(["target", "arm", "level"])["accuracy"].mean().unstack("level") * 100.0
    gaps = acc[[0]].values - acc[similar]                     # dense - ticket, per target x arm x level
    worst = gaps.max(axis=1).groupby("target").max()          # worst ticket gap per target
    where = gaps.stack().groupby("target").idxmax()
    numbers = "; ".join(f"{t}: worst gap {g:.1f} ({where[t][1]}, level {where[t][2]})" for t, g in worst.items())
    numbers += f"; tickets compared: levels {similar} (upstream {', '.join(f'{upstream[lv]:.1f}' for lv in similar)} vs dense {upstream[0]:.1f})"
    verdict = HOLDS if (worst > REPROGRAM_GAP).any() else FAILS if (worst <= UPSTREAM_SIMILAR).all() else UNSURE
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
