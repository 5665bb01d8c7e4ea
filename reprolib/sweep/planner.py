"""`python -m reprolib plan --profile P`: before spending, what each claim's design decides, and
what would decide it, priced (docs/methods.md s.12).

For every part of every claim (claims 1 and 2: their two effects; claim 3: its cells, pooled):
- the pilot's variance components per unit, seed to seed and ticket to ticket
  (reprolib.study.power.components), from the profile's own ledger; where it has one ticket
  replicate, with the replicate pilot `bench/pilots/<profile>.csv` beside it (runs of further
  replicates, committed so the planner can see ticket-to-ticket variance before the study has
  its own); a profile with no runs yet BORROWS them from the nearest offline study that tests the
  claim (an ImageNet source: imagenet-lite, then embedded), and every row says which;
- the profile's design for the claim's cells: replicates x seeds per replicate (from its grid,
  sweep.runner.build_grid), the half-width it gives and the smallest effect beyond the margin it
  detects with 80% power (power.half_width, power.detectable; claim 3's scaled to the widest
  max-T interval its own ledger measured, `_max_t_scale`);
- the cheapest design (R, S) whose half-width is at most the claim's target (Part.width: claim 1
  2 points, claim 2 0.01 ECE, claim 3 5 points per cell under its correction), priced by the cost
  model: CPU-minutes of one core for offline profiles (each run at the mean wall time its cell's
  (target, arm, n-shot) runs took in the ledger, each ticket replicate at its levels'
  train_seconds), GPU-hours for GPU profiles (sweep.cost.RunTimer at the bench's or assumed rates;
  their one-shot networks are deterministic: one replicate).

Bad input, one line and exit 2: a claim whose cells no pilot ledger holds, a pilot with one
ticket replicate where the two-level analysis needs two, a claim no design within --budget decides.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reprolib import paths
from reprolib.config import Profile, load_profile, profile_help
from reprolib.errors import ReprolibError
from reprolib.models.registry import get_spec
from reprolib.study.claims import claims_of, oneshot_claims
from reprolib.study.ledger import finished_runs, tickets_table
from reprolib.study.power import Variance, components, detectable, half_width
from reprolib.study.verdicts import Claim
from reprolib.sweep import cost
from reprolib.sweep.runner import build_grid
from reprolib.transfer.config import TransferConfig

MAX_REPLICATES, MAX_SEEDS = 12, 40
COLUMNS = ["claim", "part", "pilot", "sd seeds", "sd tickets", "design now", "half-width now", "detectable now",
           "decides at", "half-width", "cost", "added cost"]


def pilot_files(profile: Profile) -> list[tuple[str, Path]]:
    """(label, ledger file) in the planner's order: the profile's own ledger, its replicate pilot,
    then the offline studies it may borrow from (module doc)."""
    own = paths.ledger_file(profile.path("artifacts"))
    found = [(f"{profile.profile} ledger", own)]
    found.append((f"{profile.profile} replicate pilot", paths.home() / "bench" / "pilots" / f"{profile.profile}.csv"))
    nearest = ["imagenet-lite", "embedded"] if profile.source == "imagenet" else ["embedded"]
    for study in nearest:
        if study != profile.profile:
            found.append((f"borrowed from {study}", paths.ledger_file(load_profile(study).path("artifacts"))))
    return [(label, file) for label, file in found if file.is_file()]


def _read(file: Path) -> pd.DataFrame:
    frame = finished_runs(pd.read_csv(file))
    return frame.assign(replicate=frame["replicate"].fillna(1)) if "replicate" in frame else frame.assign(replicate=1)


def _testable(ledger: pd.DataFrame) -> list[Claim | None]:
    """Per claim, the testable prepared claim on the ledger's tickets, else on its one-shot networks."""
    main, oneshot = claims_of(ledger), oneshot_claims(ledger)
    return [m if m.testable else (o if o is not None and o.testable else None)
            for m, o in zip(main, oneshot or [None] * len(main))]


def pilot_claims(profile: Profile, files: list[tuple[str, Path]] | None = None) -> list[tuple[Claim, str]]:
    """Per claim, (the claim prepared on its pilot, the pilot's label), from the first pilot that
    tests it; the profile's own ledger joined by its replicate pilot (runs of one id once). Pilot
    `files` given by hand are joined into one pilot."""
    if files is not None:
        joined = pd.concat([_read(file) for _, file in files]).drop_duplicates("id")
        return _first_testable([(" + ".join(label for label, _ in files), joined)])
    ledgers, own = [], None
    for label, file in pilot_files(profile):
        frame = _read(file)
        if label.endswith("replicate pilot") and own is not None and own["replicate"].nunique() < 2:
            joined = pd.concat([own, frame]).drop_duplicates("id")
            ledgers.insert(0, (f"{ledgers.pop(0)[0]} + {label}", joined))
            continue
        own = frame if label.endswith(" ledger") and own is None else own
        ledgers.append((label, frame))
    return _first_testable(ledgers)


def _first_testable(ledgers: list[tuple[str, pd.DataFrame]]) -> list[tuple[Claim, str]]:
    """Per claim, the first (label, ledger) that tests it; a claim none tests is one line."""
    out = []
    for index in range(3):
        found = next(((c, label) for label, ledger in ledgers for c in [_testable(ledger)[index]] if c is not None),
                     None)
        if found is None:
            where = ", ".join(label for label, _ in ledgers) or "no ledger"
            raise ReprolibError(f"claim {index + 1}: its cells are missing from every pilot ledger ({where}); "
                                f"valid: a ledger with the claim's runs (`python -m reprolib plan --pilot LEDGER`)")
        out.append(found)
    return out


def design_ledger(profile: Profile) -> pd.DataFrame:
    """The profile's grid as a ledger without results (every run's cell, replicate and seed), on
    which the claims say which runs they read and which units the design gives them."""
    rows = [{"id": f"run{i}", "target": c.target, "arm": c.method if not c.label_map else f"{c.method}/{c.label_map}",
             "network": c.network, "ticket_kind": "imp" if c.network == "dense" else c.kind, "level": c.level,
             "replicate": c.replicate, "seed": c.seed, "n_shot": c.n_shot, "provenance": "here",
             "upstream_accuracy": 0.9, "density": 0.8 ** c.level, "accuracy": 0.5, "ece": 0.1, "reliability": None}
            for i, c in enumerate(build_grid(profile))]
    return pd.DataFrame(rows)


@dataclass
class Prices:
    """What a run of a cell and a ticket replicate cost, in `unit` (CPU-minutes or GPU-hours)."""

    profile: Profile
    ledger: pd.DataFrame | None
    replicate_seconds: float
    unit: str

    @classmethod
    def for_profile(cls, profile: Profile, ledger: pd.DataFrame | None) -> Prices:
        gpu = profile.device == "cuda"
        return cls(profile, None if gpu else ledger, _replicate_seconds(profile), "GPU-hours" if gpu else "CPU-minutes")

    def run(self, target: str, arm: str, n_shot: int) -> float:
        """One run's cost in `unit`: measured (mean wall time of the cell's runs), else the cost model."""
        if self.ledger is not None and "wall_time_s" in self.ledger:
            same = self.ledger[(self.ledger["target"] == target) & (self.ledger["arm"] == arm)]
            cell = same[same["n_shot"] == n_shot]["wall_time_s"].dropna()
            if len(cell):
                return float(cell.mean()) / 60.0
        method, _, label_map = arm.partition("/")
        config = TransferConfig(profile=self.profile.profile, target=target, method=method, label_map=label_map or None,
                                n_shot=int(n_shot), seed=1)
        seconds = cost.RunTimer(self.profile, cost.throughput(self.profile.backbone)).seconds(config)
        return seconds / (3600.0 if self.unit == "GPU-hours" else 60.0)

    def replicate(self) -> float:
        return self.replicate_seconds / (3600.0 if self.unit == "GPU-hours" else 60.0)


def _replicate_seconds(profile: Profile) -> float:
    """One more ticket replicate's IMP levels 1..max: their mean CPU time (train_cpu_seconds: one
    thread, so what a level costs a core whatever the machine's load; train_seconds where it was
    not recorded) of the profile's tickets, else of its replicate pilot's (every level retrains as
    long), times the levels; NaN where none were timed, 0 where replicates cannot be made."""
    if get_spec(profile.backbone).tickets != "imp":
        return 0.0
    shipped = paths.tickets_table_file(profile.path("artifacts"))   # a clone: the table, not the ticket folders
    tables = [tickets_table(profile.path("artifacts"))] + ([pd.read_csv(shipped)] if shipped.is_file() else [])
    pilot = paths.home() / "bench" / "pilots" / f"{profile.profile}_tickets.csv"
    tables += [pd.read_csv(pilot)] if pilot.is_file() else []
    for table in tables:
        for column in ("train_cpu_seconds", "train_seconds"):
            if column in table and table[column].notna().any():
                imp = table[(table["ticket_kind"] == "imp") & (table["level"] > 0)][column].dropna()
                if len(imp):
                    return float(imp.mean()) * max(profile.levels)
    return math.nan


def _units(claim: Claim) -> tuple[int, int, list[tuple]]:
    """(replicates, seeds per replicate, the cells (target, arm, n_shot) of one unit) of a design claim."""
    cells, complete = [], None
    for name, table in claim.cells.items():   # claim 2 names its tables by arm
        seeds = table.seeds
        for key in seeds.index:
            cell = dict(zip(seeds.index.names, key))
            cells.append((cell["target"], cell.get("arm", name), int(cell.get("n_shot", -1))))
        present = set(seeds.columns[~seeds.isna().any(axis=0).to_numpy()])
        complete = present if complete is None else complete & present
    replicates = len({r for r, _ in complete}) if complete else 0
    return replicates, (len(complete) // replicates if replicates else 0), cells


def _text(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _max_t_scale(group: list, v: Variance, claim: Claim, m: int) -> float:
    """Claim 3 on its own pilot: the widest of the pilot's simultaneous cell intervals (max-T sign
    flips, the analysis itself) over the Bonferroni model's half-width at the pilot's design and
    its m cells. Bonferroni ignores the cells' correlation and bounds max-T from above; this ratio brings the
    model to what the analysis measured, and the planner scales every design's half-width and
    detectable effect by it (docs/methods.md s.12). 1 where either is not a number."""
    r, s, _ = _units(claim)
    model = half_width(v, r, s, m)
    measured = max((p.interval.half_width for p in group), default=math.nan)
    return measured / model if model > 0 and math.isfinite(measured) and measured > 0 else 1.0


def _search(v: Variance, cells: list[tuple], prices: Prices, width: float, m: int, replicable: bool,
            scale: float = 1.0):
    """The cheapest (R, S, half-width, cost) whose half-width (the model's times `scale`) is at most
    `width`, else None.

    Many parameters because each is one piece of the claim's plan, already prepared by `plan`."""
    unit_cost = sum(prices.run(*cell) for cell in cells)
    best = None
    for r in (range(2, MAX_REPLICATES + 1) if replicable else [1]):
        for s in range(1, MAX_SEEDS + 1):
            hw = scale * half_width(v, r, s, m)
            if not hw <= width:
                continue
            price = unit_cost * r * s + (r - 1) * prices.replicate()
            if best is None or price < best[3]:
                best = (r, s, hw, price)
            break   # more seeds at this R only cost more
    return best, unit_cost


def plan(profile: Profile, files: list[tuple[str, Path]] | None = None, budget: float | None = None) -> pd.DataFrame:
    """The planner's table (COLUMNS) for every claim part of `profile`; `attrs` holds the cost unit
    and the lines that say what no design within `budget` decides (module doc)."""
    pilots = pilot_claims(profile, files)
    prices = Prices.for_profile(profile, _own_runs(profile, files))
    design = _testable(design_ledger(profile))
    total = grid_cost(profile, prices)
    replicable = get_spec(profile.backbone).tickets == "imp"
    rows, short = [], []
    for index, ((pilot, label), planned) in enumerate(zip(pilots, design)):
        if planned is None:
            rows.append({"claim": str(index + 1), "part": "-", "pilot": label, "design now": "not testable with this grid"})
            continue
        parts = pilot.evaluate(pilot.cells, True)[0]
        for group in ([[p] for p in parts] if pilot.every else [parts]):
            row, miss = _plan_part(str(index + 1), group, (pilot, label), planned, prices, replicable,
                                   (budget, total))
            rows.append(row)
            short += miss
    table = pd.DataFrame(rows, columns=COLUMNS).fillna("-")
    table.attrs.update(unit=prices.unit, short=short, footnote=_footnote(prices))
    return table


def _own_runs(profile: Profile, files: list[tuple[str, Path]] | None) -> pd.DataFrame | None:
    """The runs whose wall times price the profile's cells: its own ledgers, not borrowed ones."""
    own = [_read(f) for label, f in (files or pilot_files(profile)) if not label.startswith("borrowed")]
    return pd.concat(own) if own else None


def _plan_part(number: str, group: list, pilot: tuple[Claim, str], planned: Claim, prices: Prices, replicable: bool,
               budget: tuple[float | None, float]) -> tuple[dict, list[str]]:
    """One row of the plan: a claim part's (or claim 3's pooled cells') variances, design now, and
    the cheapest design that decides; with the lines of what the budget cannot buy (`budget`: the
    most the grid may cost, None for no limit, and what the grid costs now).

    Many parameters because each is one piece of the claim's plan, already prepared by `plan`."""
    claim, label = pilot
    v = components(group, label)
    if replicable and v.between is None:
        raise ReprolibError(f"claim {number} ({group[0].name}): the pilot ({label}) has one ticket replicate; the "
                            f"two-level analysis needs ticket-to-ticket variance from two or more (make replicates: "
                            f"`tickets --replicates 1-3`, run the claim's cells, or pass --pilot)")
    if label.startswith("borrowed") and planned.every:   # an average over the profile's own cells
        factor = math.sqrt(_averaged(claim) / max(_averaged(planned), 1))
        v = Variance(v.within * factor, None if v.between is None else v.between * factor, v.replicates, v.units,
                     f"{label}, sd x {factor:.2f} for {_averaged(planned)} cells")
    m = 1 if planned.every else len(planned.shifts)
    name = group[0].name if planned.every else f"each of m={m} cells"
    r0, s0, cells = _units(planned)
    scale = 1.0 if planned.every or label.startswith("borrowed") else _max_t_scale(group, v, claim, len(claim.shifts))
    if scale != 1.0:
        v = Variance(v.within, v.between, v.replicates, v.units, f"{v.source}, max-T x {scale:.2f}")
    found, unit_cost = _search(v, cells, prices, group[0].width, m, replicable, scale)
    row = {"claim": number, "part": name, "pilot": v.source, "sd seeds": _text(v.within),
           "sd tickets": _text(v.between) if replicable else "n/a (one-shot: 1 replicate)",
           "design now": f"{r0} x {s0} ({r0 * s0} units)", "half-width now": _text(scale * half_width(v, r0, s0, m)),
           "detectable now": _text(scale * detectable(v, r0, s0, m))}
    top = f"{MAX_REPLICATES if replicable else 1} replicates x {MAX_SEEDS} seeds"
    limit, total = budget
    if found is None:
        row["decides at"] = f"none within {top}"
        return row, ([f"claim {number} ({name}): no design up to {top} reaches half-width {group[0].width:g}"]
                     if limit is not None else [])
    r, s, hw, price = found
    added = max(price - unit_cost * r0 * s0 - max(r0 - 1, 0) * prices.replicate(), 0.0)
    row |= {"decides at": f"{r} x {s}", "half-width": _text(hw), "cost": _text(price, 4), "added cost": _text(added, 4)}
    over = limit is not None and total + added > limit
    return row, ([f"claim {number} ({name}): half-width {group[0].width:g} needs {r} x {s}: the grid would cost "
                  f"{total + added:,.1f} {prices.unit} (its cells add {added:,.1f}), over the budget of {limit:g}"]
                 if over else [])


def _averaged(claim: Claim) -> int:
    """How many cells a claim's effect averages over: the (target, n-shot) cells of its first table."""
    seeds = next(iter(claim.cells.values())).seeds
    names = [n for n in seeds.index.names if n in ("target", "n_shot")]
    return len({tuple(dict(zip(seeds.index.names, key))[n] for n in names) for key in seeds.index})


def _footnote(prices: Prices) -> str:
    return (f"design: ticket replicates x seeds per replicate; half-width: of the claim's interval (claim 3: the "
            f"widest cell's, under its correction: the Bonferroni bound, scaled to the max-T intervals its own "
            f"ledger measured); detectable: the distance beyond the margin decided 'holds' with 80% "
            f"power; decides at: the cheapest design whose half-width reaches the claim's target (claim 1: 2 "
            f"points, claim 2: 0.01 ECE, claim 3: 5 points); cost: {prices.unit} of the claim's cells at that "
            f"design (one more ticket replicate: {_text(prices.replicate(), 4) if prices.replicate() else 'n/a'}), "
            f"added: over the design now")


def grid_cost(profile: Profile, prices: Prices) -> float:
    """What the profile's grid costs: every run at its price, and every ticket replicate beyond the first."""
    runs = sum(prices.run(c.target, c.method if not c.label_map else f"{c.method}/{c.label_map}", c.n_shot)
               for c in build_grid(profile))
    return runs + max(profile.replicates - 1, 0) * prices.replicate()


def grid_line(profile: Profile, prices: Prices) -> str:
    """The whole grid at its measured prices: runs, their cost, the tickets' replicates, and (offline)
    the wall-clock on the profile's cores (runs spread over them; replicates made as many at a time)."""
    grid = build_grid(profile)
    tickets = max(profile.replicates - 1, 0) * prices.replicate()
    runs = grid_cost(profile, prices) - tickets
    line = (f"grid: {len(grid):,} runs, {runs:,.1f} {prices.unit} of runs (the price of each as above), "
            f"{profile.replicates} ticket replicate(s): {tickets:,.1f} {prices.unit} for the {profile.replicates - 1} "
            f"beyond the first")
    if prices.unit == "CPU-minutes":
        cores = profile.workers or os.cpu_count() or 1
        wall = runs / cores + math.ceil(max(profile.replicates - 1, 0) / cores) * prices.replicate()
        line += (f"; on {cores} cores about {wall:,.0f} minutes of runs and further replicates (the first "
                 f"replicate, its dense model and baselines, and the notebooks come on top)")
    return line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help=profile_help())
    parser.add_argument("--pilot", action="append", default=[], metavar="LEDGER",
                        help="pilot ledger(s) to read variances from (default: the profile's own, its replicate "
                             "pilot, then the nearest offline study's)")
    parser.add_argument("--budget", type=float, default=None,
                        help="the most a claim's design may cost (CPU-minutes offline, GPU-hours on GPUs); a claim "
                             "no design within it decides is one line and exit 2")


def run(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    files = None
    if args.pilot:
        files = [(f"pilot {p}", Path(p).resolve()) for p in args.pilot]
        missing = [str(f) for _, f in files if not f.is_file()]
        if missing:
            raise ReprolibError(f"--pilot {missing[0]} is not a file; valid: a ledger.csv")
    table = plan(profile, files, args.budget)
    print(f"power plan for {profile.profile} (costs in {table.attrs['unit']})")
    print(table.to_string(index=False))
    print(table.attrs["footnote"])
    print(grid_line(profile, Prices.for_profile(profile, _own_runs(profile, files))))
    if table.attrs["short"]:
        raise ReprolibError("; ".join(table.attrs["short"]))
    return 0
