"""Compare two ledgers run by run: did a refactor or a speed-up change any number?

`compare_ledgers(before, after)` pairs the runs of two ledger CSVs by their configuration
(the run id, a hash of the resolved config), and reports, per metric column (the registered
metrics shown in "compare", reprolib.scores.registry, and every `ood_*` column), how many
paired runs hold exactly the same value and the largest absolute difference. Runs present in
only one ledger are counted, not compared.
Also `python -m reprolib compare BEFORE.csv AFTER.csv` (exit 1 when anything differs).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from reprolib.errors import ReprolibError
from reprolib.scores.registry import names as metric_names


@dataclass(frozen=True)
class ColumnDiff:
    column: str
    compared: int        # paired runs with a value on both sides
    identical: int       # of those, exactly equal (NaN == NaN)
    max_abs_diff: float


@dataclass(frozen=True)
class LedgerDiff:
    paired: int
    only_before: int
    only_after: int
    columns: tuple[ColumnDiff, ...]

    @property
    def identical(self) -> bool:
        """Same runs, and every metric of every run exactly equal."""
        return (self.only_before == 0 and self.only_after == 0
                and all(c.identical == c.compared for c in self.columns))

    def lines(self) -> list[str]:
        out = [f"runs paired: {self.paired}; only in before: {self.only_before}; only in after: {self.only_after}"]
        out += [f"{c.column:<22} identical {c.identical}/{c.compared}  max |diff| {c.max_abs_diff:.3g}"
                for c in self.columns]
        out.append("verdict: identical" if self.identical else "verdict: DIFFERENT")
        return out


def _read(path: Path):
    """A ledger CSV; a binary, empty, truncated or malformed file is one line naming it."""
    import io

    import pandas as pd

    if not Path(path).is_file():
        raise ReprolibError(f"no ledger at {path}; build one with `python -m reprolib ledger --profile P`")
    valid = "valid: a ledger.csv as `python -m reprolib ledger` writes it"
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        raise ReprolibError(f"{path} is not a text file (binary?); {valid}")
    if not text.strip():
        raise ReprolibError(f"{path} is empty; {valid}")
    if not text.endswith("\n"):
        raise ReprolibError(f"{path} ends mid-line (truncated?); rebuild it with `python -m reprolib ledger`; {valid}")
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise ReprolibError(f"{path} is not a readable CSV ({' '.join(str(err).split())[:120]}); {valid}") from None
    if "id" not in frame:
        raise ReprolibError(f"{path} has no 'id' column; {valid}")
    return frame


# What makes a run the same run when its id (config hash) cannot be used, e.g. after a
# change that adds a field to the hashed config.
STUDY_KEY = ("profile", "target", "arm", "network", "ticket_kind", "level", "n_shot", "seed")


def compare_ledgers(before: str | Path, after: str | Path, on: tuple[str, ...] = ("id",)) -> LedgerDiff:
    """Pair the two ledgers' runs by `on` (default: the run id) and compare every metric exactly."""
    old, new = _read(Path(before)), _read(Path(after))
    for frame, name in ((old, before), (new, after)):
        missing = [c for c in on if c not in frame]
        if missing:
            raise ReprolibError(f"ledger {name} has no column {missing[0]!r}; valid choices: {', '.join(frame.columns)}")
        if frame.duplicated(list(on)).any():
            raise ReprolibError(f"ledger {name} has several runs per {', '.join(on)}; pair on more columns")
    old_keys, new_keys = old[list(on)].astype(str).agg("|".join, axis=1), new[list(on)].astype(str).agg("|".join, axis=1)
    merged = old.merge(new, on=list(on), suffixes=("_before", "_after"))
    metrics = [c for c in metric_names(place="compare") if c in old and c in new]
    metrics += sorted(c for c in set(old.columns) & set(new.columns) if c.startswith("ood_"))
    columns = []
    for column in metrics:
        a, b = merged[f"{column}_before"], merged[f"{column}_after"]
        both = a.notna() & b.notna()
        same = ((a == b) & both) | (a.isna() & b.isna())
        diff = (a[both] - b[both]).abs()
        columns.append(ColumnDiff(column, int(both.sum() + (a.isna() & b.isna()).sum()), int(same.sum()),
                                  float(diff.max()) if len(diff) else 0.0))
    return LedgerDiff(paired=len(merged), only_before=int((~old_keys.isin(new_keys)).sum()),
                      only_after=int((~new_keys.isin(old_keys)).sum()), columns=tuple(columns))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", help="a ledger.csv (e.g. a copy kept from before a change)")
    parser.add_argument("after", help="another ledger.csv (e.g. <artifacts>/ledger.csv now)")
    parser.add_argument("--by-study-key", action="store_true",
                        help="pair runs by profile/target/arm/ticket/shots/seed instead of run id")


def run(args: argparse.Namespace) -> int:
    diff = compare_ledgers(Path(args.before), Path(args.after), on=STUDY_KEY if args.by_study_key else ("id",))
    print("\n".join(diff.lines()))
    return 0 if diff.identical else 1
