"""The curated table of published sparse ImageNet checkpoints that `tickets fetch NAME` knows.

One `PublishedTicket` per checkpoint: where its authors publish it (`page`), a direct file
address when one is known (`url`, fetched by `tickets fetch`), the backbone it loads into,
its sparsity and ImageNet top-1 as the authors report them (docs/methods.md s.11, from
/work/shared/spec/methods.md s.11), the mask convention of the file and its sha256.

Honesty rules of this table: a checksum is given only for a file whose bytes were hashed;
`sha256=None` means "not verified here" (the README's table says so) and `fetch` then
records the hash it computed instead of checking one. Several authors publish their files
behind folder pages (IST-DASLab's seafile shares, STR's release page) rather than stable
per-file addresses; for those `url` is None and `fetch` says where to download by hand and
how to `tickets import` the file. `fetch --url` gives any entry an address.
"""

from __future__ import annotations

from dataclasses import dataclass

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


_STR_PAGE = "https://github.com/RAIVNLab/STR#pretrained-models"
_IST_PAGE = "https://seafile.ist.ac.at/d/91de9650cfb54b77b7d1/ (IST-DASLab/sparse-imagenet-transfer, ResNet50)"
_SOS_PAGE = "https://github.com/google-research/google-research/tree/master/state_of_sparsity"
_RESNET50 = "resnet50"

TABLE: tuple[PublishedTicket, ...] = (
    PublishedTicket("str-resnet50-81", _RESNET50, "STR", 0.8127, 0.7612, _STR_PAGE),
    PublishedTicket("str-resnet50-90", _RESNET50, "STR", 0.9023, 0.7431, _STR_PAGE),
    PublishedTicket("str-resnet50-95", _RESNET50, "STR", 0.9515, 0.7023, _STR_PAGE),
    PublishedTicket("str-resnet50-97", _RESNET50, "STR", 0.9653, 0.6722, _STR_PAGE),
    PublishedTicket("str-resnet50-98", _RESNET50, "STR", 0.9805, 0.6146, _STR_PAGE),
    # State of Sparsity (Gale et al.): TensorFlow checkpoints, magnitude pruning with a uniform
    # distribution; convert them first (docs/methods.md s.11), then `tickets import` the result.
    PublishedTicket("sos-magnitude-resnet50-80", _RESNET50, "magnitude (State of Sparsity, uniform)", 0.80, 0.7558,
                    _SOS_PAGE, mask="tensorflow"),
    PublishedTicket("sos-magnitude-resnet50-90", _RESNET50, "magnitude (State of Sparsity, uniform)", 0.90, 0.7391,
                    _SOS_PAGE, mask="tensorflow"),
)
# IST-DASLab's converted ResNet50s (AC/DC, RigL, STR, WoodFisher, GMP at 80-98%, one PyTorch
# format: dense state dicts with exact zeros) sit in one folder share (_IST_PAGE) without
# per-file addresses or a per-file top-1 in s.11; import them by file (`tickets import`).


def names() -> list[str]:
    """Every curated checkpoint name."""
    return [entry.name for entry in TABLE]


def get(name: str) -> PublishedTicket:
    """The entry called `name` (a one-line error naming the choices otherwise)."""
    check_choice("published ticket", name, names())
    return next(entry for entry in TABLE if entry.name == name)
