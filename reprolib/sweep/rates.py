"""Measured backbone rates: where `sweep --dry-run` reads the images/s it prices a grid at.

`bench/rates.csv` (under the workbook home) holds one row per measured pass, appended by
`make gpu-check` (bench/gpu_check.py: the paper backbone at 224 px on the GPU, in the precision
the transfer loop uses) and `make bench` (bench/bench_throughput.py, on this machine). Columns
(`RATE_COLUMNS`): backbone, pass ("fwd": forward without gradients, as evaluation, the
label-mapping pass and LP's feature pass run; "fwd+bwd": forward and the backward pass to the
input through the frozen backbone, as a prompt's training step runs), images_per_s, precision,
batch, px, device ("cuda: <GPU name>" or "cpu: <processor>"), date, by (the command).

`throughput(backbone, fwd, fwdbwd, device)` picks, in order: the rates given on the command line;
the last rows measured for the backbone on the profile's kind of device; the stated assumption
(`ASSUMED_FWD`, `ASSUMED_FWDBWD`). Its `source` says which, for the user: the device, date and
precision of a measurement, or that the figures are a guess and how to measure them.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from reprolib import paths
from reprolib.errors import option_type
from reprolib.records import atomic_write

# Used until rates are measured: a guess at ResNet-50 (224 px) on one H100, stated as one when used.
ASSUMED_FWD, ASSUMED_FWDBWD = 3000.0, 1000.0
RATE_COLUMNS = ("backbone", "pass", "images_per_s", "precision", "batch", "px", "device", "date", "by")


@dataclass(frozen=True)
class Throughput:
    """Images/s forward and forward+backward, and where the figures come from."""

    fwd: float
    fwdbwd: float
    source: str


def rates_file() -> Path:
    return paths.home() / "bench" / "rates.csv"


def device_kind(device: str) -> str:
    """The kind of device a profile's runs use: 'cuda' or 'cpu' ('auto': what this machine has)."""
    if device == "auto":
        from reprolib.devices import resolve_device

        return resolve_device(device)
    return str(device).split(":")[0]


def measured_rates(backbone: str, kind: str, path: Path | None = None) -> dict[str, dict[str, str]]:
    """{'fwd': row, 'fwd+bwd': row}: the last rows in the rates file for `backbone` measured on a
    device of `kind` (a row's `device` is 'cuda: <GPU name>' or 'cpu: <processor>')."""
    path = path or rates_file()
    if not path.is_file():
        return {}
    found = {}
    for row in csv.DictReader(io.StringIO(path.read_text())):
        if row.get("backbone") == backbone and str(row.get("device", "")).split(":")[0] == kind \
                and row.get("pass") in ("fwd", "fwd+bwd"):
            found[row["pass"]] = row
    return found


def record_rates(rows: list[dict[str, object]], path: Path | None = None) -> Path:
    """Append measured rate rows (RATE_COLUMNS) to the rates file, atomically."""
    path = path or rates_file()
    old = path.read_text() if path.is_file() else ""
    out = io.StringIO()
    writer = csv.DictWriter(out, RATE_COLUMNS, lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerows({column: row.get(column, "") for column in RATE_COLUMNS} for row in rows)
    return atomic_write(path, lambda f: f.write(old + out.getvalue()), "w")


def _measured_source(rows: dict[str, dict[str, str]], path: Path) -> str:
    fwd, fwdbwd = rows["fwd"], rows["fwd+bwd"]
    when = fwd["date"] if fwd["date"] == fwdbwd["date"] else f"{fwd['date']} and {fwdbwd['date']}"
    return (f"measured on {fwdbwd['device']} on {when} by {fwdbwd['by']} (forward {fwd['precision']}, "
            f"forward+backward {fwdbwd['precision']}, batch {fwdbwd['batch']}, {fwdbwd['px']} px), read from {path}")


def throughput(backbone: str, fwd: float | None = None, fwdbwd: float | None = None,
               device: str = "cuda") -> Throughput:
    """The rates to price a grid at: the user's, else those measured for `backbone` on the
    profile's kind of `device` in the rates file, else the stated assumption."""
    if fwd is not None and fwdbwd is not None:
        return Throughput(fwd, fwdbwd, "given on the command line")
    kind, path = device_kind(device), rates_file()
    rows = measured_rates(backbone, kind, path)
    if fwd is None and fwdbwd is None and {"fwd", "fwd+bwd"} <= set(rows):
        return Throughput(float(rows["fwd"]["images_per_s"]), float(rows["fwd+bwd"]["images_per_s"]),
                          _measured_source(rows, path))
    measured = {name: float(row["images_per_s"]) for name, row in rows.items()}
    given = "one rate given on the command line, the other " if fwd is not None or fwdbwd is not None else ""
    return Throughput(fwd or measured.get("fwd") or ASSUMED_FWD, fwdbwd or measured.get("fwd+bwd") or ASSUMED_FWDBWD,
                      f"{given}ASSUMED, not measured: {path} has no {backbone} rates measured on {kind}, so "
                      f"{ASSUMED_FWDBWD:,.0f} images/s forward+backward and {ASSUMED_FWD:,.0f} forward (a guess at "
                      "ResNet-50 on one H100); `make gpu-check` on your GPU measures them, "
                      "or pass --throughput-fwd/--throughput-fwdbwd")


def parse_rate(text: str, option: str = "throughput") -> float:
    """A positive, finite images/s figure from the command line ('1000', '1,000', '1e3'); a bad one is
    one line naming `option`."""
    from reprolib.config import Positive   # the profile schema's own number types

    return option_type(Positive, option)(re.sub(r"[,_]", "", str(text)))
