"""The curated table of published sparse ImageNet checkpoints that `tickets fetch NAME` knows.

The table itself is package data, `reprolib/published/sparse_checkpoints.csv`; this module
types and reads it.

One `PublishedTicket` per checkpoint: where its authors publish it (`page`), a direct file
address when one is known (`url`, fetched by `tickets fetch`), the backbone it loads into,
its sparsity and ImageNet top-1 as the authors report them (docs/methods.md s.11, from
/work/shared/spec/methods.md s.11), the mask convention of the file and its sha256.

Honesty rules of this table: a checksum is given only for a file whose bytes were hashed;
`sha256=None` means "not verified here" (`tickets list` says so) and `fetch` then
records the hash it computed instead of checking one. Several authors publish their files
behind folder pages (IST-DASLab's seafile shares, STR's release page) rather than stable
per-file addresses; for those `url` is None and `fetch` says where to download by hand and
how to `tickets import` the file. `fetch --url` gives any entry an address.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from reprolib import paths
from reprolib.errors import check_choice


@dataclass(frozen=True)
class PublishedTicket:
    """One published sparse checkpoint (top-1 and sparsity are fractions, as the authors report them)."""

    name: str
    backbone: str               # a reprolib.models registry name
    method: str                 # how its authors made it (STR, AC/DC, GMP, ...)
    sparsity: float             # reported fraction of pruned weights
    published_top1: float       # reported ImageNet top-1
    page: str                   # where the authors publish it
    url: str | None = None      # a direct file address, when one is known
    sha256: str | None = None   # None: not verified here
    mask: str = "zeros"         # "zeros" (load_ticket's mask=) or "tensorflow" (convert first)

    def source(self) -> str:
        """One line naming the checkpoint's origin, for reports and records."""
        return f"{self.method} {self.sparsity:.2%} sparse, published top-1 {self.published_top1:.2%} ({self.page})"


TABLE_FILE = "sparse_checkpoints.csv"   # under reprolib/published (package data: the facts live there)
# IST-DASLab's converted ResNet50s (AC/DC, RigL, STR, WoodFisher, GMP at 80-98%, one PyTorch
# format: dense state dicts with exact zeros) sit in one folder share,
# https://seafile.ist.ac.at/d/91de9650cfb54b77b7d1/, without per-file addresses or a per-file
# top-1 in the spec; import them by file (`tickets import FILE --name NAME`).


def _read_table() -> tuple[PublishedTicket, ...]:
    """The curated table from its CSV (comment lines start with '#')."""
    with open(paths.PUBLISHED_DIR / TABLE_FILE, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    return tuple(PublishedTicket(name=r["name"], backbone=r["backbone"], method=r["method"], sparsity=float(r["sparsity"]),
                                 published_top1=float(r["published_top1"]), page=r["page"], url=r["url"] or None,
                                 sha256=r["sha256"] or None, mask=r["mask"]) for r in rows)


TABLE: tuple[PublishedTicket, ...] = _read_table()


def names() -> list[str]:
    """Every curated checkpoint name."""
    return [entry.name for entry in TABLE]


def get(name: str) -> PublishedTicket:
    """The entry called `name` (a one-line error naming the choices otherwise)."""
    check_choice("published ticket", name, names())
    return next(entry for entry in TABLE if entry.name == name)
