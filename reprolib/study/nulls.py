"""The test of the tests: how often a claim's verdict errs when its effect sits exactly at the
margin (docs/methods.md s.12).

A null draw takes a claim's unit tables (verdicts.Claim.cells), removes each sparse network's
mean difference to dense (effects.center_networks: the effects become 0, each unit's noise
stays), gives that noise random signs (effects.flip_networks: the replicate's part of each paired
difference per replicate, each unit's deviation from it per unit, the same signs in every cell,
so the replicate structure and the cells' correlation are kept), and moves each part of the
claim so that its expected effect is
`margin + offset` (effects.shift_cells, through Claim.shifts). Centring first matters: swapping
the raw dense and ticket results would turn the observed effects themselves into the noise (a
two-point, heavy-tailed null unlike the data at the margin). Two kinds of draws:

- "holds" at the margin: one part exactly at its margin, the others far above theirs (claims
  1 and 2, whose "holds" needs every part: the least favourable case is one part at the
  margin), or every cell at its margin (claim 3, "holds" for any cell). A sound test says
  "holds" in at most NULL_LIMIT of them; nominally 2.5%.
- "does not hold" at the margin, from the other side: every part at its margin (claims 1 and
  2, where any part can make it fail: Bonferroni keeps the sum at 2.5%), or the worst cell at
  its margin and the others far below (claim 3). At most NULL_LIMIT, nominally 2.5%.

Each rate comes with its Clopper-Pearson upper bound (stats.rate_upper). A claim the study
cannot test has no rate ("not testable here"), nor does one with fewer than two units (its
interval is an image bootstrap, which a null draw of the unit table cannot redo). Seeded: the
same ledger gives the same rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reprolib.errors import check_type
from reprolib.study.effects import center_networks, flip_networks, shift_cells
from reprolib.study.stats import rate_upper
from reprolib.study.verdicts import FAILS, HOLDS, Claim

NULL_DRAWS = 200          # draws per scenario
NULL_LIMIT = 0.05         # the most often a verdict may err at the margin
FAR = 1e3                 # "far from the margin", in effect units: that part never decides
NULL_COLUMNS = ["claim", "draws", "holds_at_margin", "holds_rate", "holds_upper", "holds_case",
                "fails_at_margin", "fails_rate", "fails_upper", "within_limit", "note"]


@dataclass(frozen=True)
class Scenario:
    """Null draws counting `verdict`, each part's effect at its margin + its offset."""

    verdict: str
    offsets: tuple[float, ...]
    case: str


def scenarios(claim: Claim, names: list[str], means: list[float]) -> list[Scenario]:
    """The least favourable cases of the claim's two verdicts (module doc)."""
    k = len(names)
    if claim.every:
        holds = [Scenario(HOLDS, tuple(0.0 if j == i else FAR for j in range(k)), f"{names[i]} at its margin")
                 for i in range(k)]
        return [*holds, Scenario(FAILS, (0.0,) * k, "every part at its margin")]
    worst = int(np.argmax(means))
    return [Scenario(HOLDS, (0.0,) * k, f"all {k} cells at the margin"),
            Scenario(FAILS, tuple(0.0 if j == worst else -FAR for j in range(k)),
                     f"{names[worst]} at the margin, the others far below")]


def null_verdict(claim: Claim, centered: dict, scenario: Scenario, margins: list[float],
                 rng: np.random.Generator) -> str:
    """The claim's verdict on one null draw of `scenario` (`centered`: its unit tables, centred)."""
    tables = {name: flip_networks(table, rng) for name, table in centered.items()}
    for shifts, margin, offset in zip(claim.shifts, margins, scenario.offsets):
        for name, chosen, per_unit in shifts:
            tables[name] = shift_cells(tables[name], chosen, per_unit * (margin + offset))
    drawn = {name: claim.cells[name].with_table(table) for name, table in tables.items()}
    return claim.evaluate(drawn, False)[2]


def claim_null_rates(claim: Claim, draws: int = NULL_DRAWS, seed: int = 0) -> dict:
    """One row of NULL_COLUMNS for a prepared claim (its name in `claim`)."""
    row = {"claim": claim.row["claim"], "draws": draws}
    if not claim.testable:
        return row | {"draws": 0, "note": "not testable here: no null rate"}
    parts = claim.evaluate(claim.cells, False)[0]
    units = min(int((~np.isnan(c.seeds.to_numpy(dtype=float))).any(axis=0).sum()) for c in claim.cells.values())
    if units < 2 or any(p.interval.method.startswith("image bootstrap") for p in parts):
        return row | {"draws": 0, "note": "fewer than 2 units (seeds) per cell: no null draw of an image bootstrap"}
    rng = np.random.default_rng(seed)
    margins = [p.margin for p in parts]
    centered = {name: center_networks(cells.seeds) for name, cells in claim.cells.items()}
    counts: dict[str, list[tuple[int, str]]] = {HOLDS: [], FAILS: []}
    for scenario in scenarios(claim, [p.name for p in parts], [p.interval.mean for p in parts]):
        hits = sum(null_verdict(claim, centered, scenario, margins, rng) == scenario.verdict for _ in range(draws))
        counts[scenario.verdict].append((hits, scenario.case))
    (holds, case), (fails, _) = max(counts[HOLDS]), max(counts[FAILS])
    rates = {"holds_at_margin": holds, "holds_rate": holds / draws, "holds_upper": rate_upper(holds, draws),
             "holds_case": case, "fails_at_margin": fails, "fails_rate": fails / draws,
             "fails_upper": rate_upper(fails, draws)}
    return row | rates | {"within_limit": max(holds, fails) / draws <= NULL_LIMIT, "note": ""}


def null_rates(claims: list[Claim], draws: int = NULL_DRAWS, seed: int = 0) -> pd.DataFrame:
    """NULL_COLUMNS for each claim: how often "holds" and "does not hold" err at the margin."""
    check_type("draws", draws, int)
    rows = [claim_null_rates(claim, draws, seed + index) for index, claim in enumerate(claims)]
    return pd.DataFrame(rows, columns=NULL_COLUMNS)


def rate_text(row: pd.Series | dict) -> str:
    """'holds 1.5% (3/200, <= 4.3%); does not hold 0.5% (1/200, <= 2.8%)', or the note."""
    if not row.get("draws"):
        return str(row.get("note") or "")
    return (f"holds {row['holds_rate']:.1%} ({row['holds_at_margin']}/{row['draws']}, <= {row['holds_upper']:.1%}); "
            f"does not hold {row['fails_rate']:.1%} ({row['fails_at_margin']}/{row['draws']}, "
            f"<= {row['fails_upper']:.1%})")
