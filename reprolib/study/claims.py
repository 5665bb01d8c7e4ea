"""The RLT paper's three qualitative claims as precise tests on our ledger, judged by intervals.

Each claim becomes one row: the claim, the exact test statement (which says the test in
words), the numbers behind it, each with its interval and n, and a verdict from those
intervals (docs/methods.md s.12). A claim is one or more *parts* (an effect and its margin):
"holds" when every part's 95% interval lies wholly above its margin (an intersection of
one-sided 2.5% tests: no correction needed); "does not hold" when some part's interval at
confidence 1 - 0.05/k (Bonferroni over the k parts, so that any one part failing errs at most
2.5% in all) lies wholly below its margin; "inconclusive" otherwise, with the number of units
that would decide; "not testable here" when the study lacks the runs or measurements a claim
needs (and why). Effects are paired: the dense model and its tickets in one (target, arm,
n-shot) cell share each unit's few-shot draw, so every effect is computed unit by unit (one
unit: one seed of one ticket replicate; means over targets within a unit, every target weighing
the same) and its interval is two-level over the units (effects.effect_interval: clustered by
ticket replicate, so ticket-to-ticket variation is covered), or an image bootstrap with fewer
than two units. Claim 3 takes the worst of many cells and is corrected by a max-T sign-flip
permutation over the replicates (stats.max_t_bounds). Accuracy differences are in points.

`reprolib.study.nulls` tests the tests: each claim is judged on draws whose effect sits exactly
at its margin, and must say "holds" (and, from the other side, "does not hold") in at most 5%.

Which networks count as tickets (the ledger's `provenance`, reprolib.sparsity.network):
`claims_table` judges the claims on TICKETS WITH A MEASURED UPSTREAM ACCURACY only: the
IMP tickets made here (provenance "here"), else imported tickets whose ImageNet top-1 was
measured (`tickets evaluate --imagenet`). When no ticket has one, every claim is "not testable
here": claim 3 is about tickets of similar upstream accuracy, and claims 1 and 2 compare dense
models with tickets, which a damaged network is not known not to be. Networks pruned once and
never retrained (provenance "oneshot") are not tickets: `oneshot_table` reports the same three
tests on them under their own heading. A ledger saved before provenance existed is read as
before: every ticket was made here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reprolib.errors import check_type
from reprolib.study.claim_tests import claim_dense_calibrated, claim_lp_robust, gap_claim
from reprolib.study.verdicts import (COLUMNS, FAILS, HOLDS, IMP_TICKETS, NAMES_BY_PROVENANCE, NOT_TESTABLE,
                                     ONESHOT_NETWORKS, TICKET_PROVENANCES, UNSURE, VERDICTS, Claim, SparseNames)

ONESHOT = "oneshot"
__all__ = ["HOLDS", "FAILS", "UNSURE", "NOT_TESTABLE", "VERDICTS", "COLUMNS", "Claim", "claims_of", "oneshot_claims",
           "claims_table", "oneshot_table", "networks_view"]


def _claims(view: pd.DataFrame, names: SparseNames) -> list[Claim]:
    return [claim_lp_robust(view, names), claim_dense_calibrated(view, names), gap_claim(view, names)]


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


def _untestable(claims: list[Claim], why: str) -> list[Claim]:
    return [Claim(c.row, why=why) for c in claims]


def claims_of(ledger: pd.DataFrame) -> list[Claim]:
    """The three claims prepared on tickets with a measured upstream accuracy: the IMP tickets
    made here, else imported tickets; see the module doc."""
    check_type("ledger", ledger, pd.DataFrame)
    for provenance in TICKET_PROVENANCES:
        view = networks_view(ledger, provenance)
        if ((view["ticket_kind"] == "imp") & (view["level"] > 0)).any():
            measured = _measured(view)
            names = NAMES_BY_PROVENANCE[provenance]
            if measured is None:
                return _untestable(_claims(view.iloc[0:0], names),
                                   f"no {provenance} ticket has a measured upstream accuracy, so none is known to be a "
                                   f"ticket of its dense model (`python -m reprolib tickets evaluate --imagenet DIR`)")
            return _claims(measured, names)
    claims = _claims(networks_view(ledger, "here"), IMP_TICKETS)   # no sparse network: each says what it lacks
    if len(oneshot_claims(ledger)):
        claims = _untestable(claims, "no ticket with a measured upstream accuracy in the ledger: its sparse networks "
                                     "are pruned once and not retrained, with no upstream accuracy (tested apart, "
                                     "as one-shot networks, not as tickets)")
    return claims


def oneshot_claims(ledger: pd.DataFrame) -> list[Claim]:
    """The three tests on networks pruned once and NOT retrained (not tickets), claim names
    marked so; claim 3 is not testable unless their upstream accuracy was measured. Empty when
    the ledger has no one-shot networks."""
    check_type("ledger", ledger, pd.DataFrame)
    view = networks_view(ledger, ONESHOT)
    if not ((view["ticket_kind"] == "imp") & (view["level"] > 0)).any():
        return []
    names = ONESHOT_NETWORKS
    measured = _measured(view)
    third = gap_claim(measured if measured is not None else view, names)
    if measured is None:
        third = Claim(third.row, why="upstream accuracy not measured: the one-shot networks were never evaluated on "
                                     "the source task (ImageNet is not available here), and the claim is about "
                                     "tickets of similar upstream accuracy")
    label = " [one-shot pruned, not retrained: not tickets]"
    claims = [claim_lp_robust(view, names), claim_dense_calibrated(view, names), third]
    for claim in claims:
        claim.row = claim.row | {"claim": claim.row["claim"] + label}
    return claims


def claims_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (claim, statement, numbers, verdict), judged on tickets with a measured
    upstream accuracy: the IMP tickets made here, else imported tickets; see the module doc."""
    return pd.DataFrame([c.result() for c in claims_of(ledger)], columns=COLUMNS)


def oneshot_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """oneshot_claims as a table (empty, with the columns, when there are no one-shot networks)."""
    return pd.DataFrame([c.result() for c in oneshot_claims(ledger)], columns=COLUMNS)


def units_of(claim: Claim) -> tuple[int, int]:
    """(units, ticket replicates) behind a testable claim's first unit table (0, 0 when none)."""
    if not claim.testable or not claim.cells:
        return 0, 0
    columns = next(iter(claim.cells.values())).seeds.columns
    return len(columns), len(set(np.asarray(columns.get_level_values("replicate")))) if len(columns) else 0
