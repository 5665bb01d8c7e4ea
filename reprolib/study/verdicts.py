"""What a claim's verdict is made of: parts (an effect, its margin, its intervals), the verdict
rule (`judge`), and `Claim`, a claim prepared on a ledger (its unit tables and how to judge them),
shared by the claims (reprolib.study.claim_tests), their tables (reprolib.study.claims) and
the null tests at the margin (reprolib.study.nulls). docs/methods.md s.12.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from reprolib.study.stats import Interval

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
NOT_TESTABLE = "not testable here"
VERDICTS = (HOLDS, FAILS, UNSURE, NOT_TESTABLE)
COLUMNS = ["claim", "statement", "numbers", "verdict"]


@dataclass(frozen=True)
class SparseNames:
    """What a claim's statement and numbers call the sparse networks it tests (the tests read
    every kind through claims.networks_view, which files them under ticket_kind "imp")."""

    singular: str
    plural: str
    article: str   # "a" / "an" before `singular`
    level: str     # "<level> 4": the sparsity level of these networks


IMP_TICKETS = SparseNames("IMP ticket", "IMP tickets", "an", "IMP level")
IMPORTED_TICKETS = SparseNames("imported ticket", "imported tickets", "an", "imported ticket at profile level")
ONESHOT_NETWORKS = SparseNames("one-shot pruned network", "one-shot pruned networks", "a", "one-shot magnitude level")
TICKET_PROVENANCES = ("here", "imported")   # in this order of preference; never mixed in one table
NAMES_BY_PROVENANCE = {"here": IMP_TICKETS, "imported": IMPORTED_TICKETS}


@dataclass(frozen=True)
class Part:
    """One effect a claim tests: its name, its margin, its 95% interval, the interval the
    "does not hold" check reads (confidence 1 - 0.05/k over a claim's k parts), and `width`,
    the half-width a design must reach to decide it (the power planner's target). `units` (when
    the claim was evaluated in detail): the effect per unit and each unit's ticket replicate,
    which the power planner reads its variances from."""

    name: str
    margin: float
    interval: Interval
    fail_interval: Interval
    width: float = math.nan
    units: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def decide_note(self) -> str:
        """For an interval that straddles the margin: how far the effect is from it, and about
        how many units would make the half-width that distance ('' when it does not straddle)."""
        i = self.interval
        if math.isnan(i.low) or i.clears(self.margin) or i.below(self.margin):
            return ""
        distance = abs(i.mean - self.margin)
        if distance == 0:
            return f"{self.name} sits on its margin {self.margin:g}: no n decides it"
        units = math.ceil(i.n * (i.half_width / distance) ** 2)
        return (f"{self.name} lies {distance:.3g} from its margin, within its half-width {i.half_width:.3g}: "
                f"about {units} units (now {i.n}) would decide it")


def judge(parts: list[Part], every: bool = True) -> str:
    """The verdict of a claim from its parts. `every` (claims 1 and 2): "holds" when each part's
    interval clears its margin, "does not hold" when any part's fail interval lies below it. Not
    `every` (claim 3, "for at least one cell", simultaneous intervals): "holds" when any part
    clears, "does not hold" when every part lies below. "inconclusive" otherwise."""
    clears = [p.interval.clears(p.margin) for p in parts]
    below = [p.fail_interval.below(p.margin) for p in parts]
    if parts and (all(clears) if every else any(clears)):
        return HOLDS
    if parts and (any(below) if every else all(below)):
        return FAILS
    return UNSURE


Shift = tuple[str, Callable[[dict], bool], float]   # (cells name, which cells, change per unit of effect)


@dataclass
class Claim:
    """A claim prepared on a ledger: its row (claim, statement), the unit tables it reads
    (effects.Cells by name), and how to judge them; or, with `why`, a claim this study cannot
    test. `shifts[k]` moves part k by one unit of its effect (reprolib.study.nulls)."""

    row: dict[str, str]
    why: str = ""
    cells: dict = field(default_factory=dict)
    evaluate: Callable[[dict, bool], tuple[list[Part], str, str]] | None = None
    shifts: list[list[Shift]] = field(default_factory=list)
    every: bool = True

    @property
    def testable(self) -> bool:
        return not self.why

    def result(self) -> dict[str, str]:
        """The claim's table row: its numbers and verdict (or "not testable here" and why)."""
        if not self.testable:
            return self.row | {"numbers": self.why, "verdict": NOT_TESTABLE}
        parts, numbers, verdict = self.evaluate(self.cells, True)
        if not self.every:   # "for at least one": the part nearest to deciding speaks for the claim
            parts = [max(parts, key=lambda p: p.interval.mean)]
        notes = [p.decide_note() for p in parts] if verdict == UNSURE else []
        notes = [n for n in notes if n]
        return self.row | {"numbers": numbers + ("; " + "; ".join(notes) if notes else ""), "verdict": verdict}
