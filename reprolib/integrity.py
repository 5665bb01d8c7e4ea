"""`integrity_checks_bypassed()`: let torchvision read synthetic CIFAR / SVHN / Flowers102.

A leaf module (it imports nothing from reprolib), so the data loaders can use it without an
import cycle through reprolib.dryrun: `bypassed_for_root(root)` applies the bypass exactly
when `root` is a dry-run data root, i.e. holds the DRYRUN_MARKER file that only
`reprolib.dryrun.write_dryrun_root` writes. A real data root (the paper profile's) never
holds it, so the paper path always checks md5s; the dry-run profile needs no switch.

Three torchvision 0.29 dataset modules compare the md5 of files against the real
download's hash, which synthetic files cannot match:

| module                          | function patched  | files it md5-checks                           |
|---------------------------------|-------------------|-----------------------------------------------|
| torchvision.datasets.cifar      | check_integrity   | CIFAR10/100 batch files and batches.meta/meta |
| torchvision.datasets.svhn       | check_integrity   | {train,test,extra}_32x32.mat                  |
| torchvision.datasets.flowers102 | check_integrity   | imagelabels.mat, setid.mat                    |

Each module calls the name `check_integrity` it imported from torchvision.datasets.utils.
Inside the context manager exactly those three module attributes are replaced by a check
that still requires the file to exist but ignores the md5 (torchvision's own
`check_integrity(path, md5=None)`); on exit the originals are restored. Nothing else is
patched: torchvision.datasets.utils.check_integrity itself, downloads and archive md5
checks stay untouched. The other dry-run sets (GTSRB, DTD, Pets, EuroSAT, Food101, SUN397,
StanfordCars) only check that folders/files exist and need no bypass.

Not thread-safe (module attributes); torchvision checks only in the dataset constructor,
so wrapping the construction (or a whole dry run) is enough; DataLoader workers never check.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path

DRYRUN_MARKER = ".reprolib-dryrun-root"   # in a data root: synthetic stand-ins live here
PATCHED_MODULES = ("torchvision.datasets.cifar", "torchvision.datasets.svhn", "torchvision.datasets.flowers102")


def _exists_only(fpath, md5=None) -> bool:
    from torchvision.datasets.utils import check_integrity

    return check_integrity(fpath, None)


@contextlib.contextmanager
def integrity_checks_bypassed() -> Iterator[tuple[str, ...]]:
    """Within the block, CIFAR/SVHN/Flowers102 accept files that exist, whatever their md5."""
    modules = [importlib.import_module(name) for name in PATCHED_MODULES]
    originals = [module.check_integrity for module in modules]
    try:
        for module in modules:
            module.check_integrity = _exists_only
        yield PATCHED_MODULES
    finally:
        for module, original in zip(modules, originals):
            module.check_integrity = original


def is_dryrun_root(root: str | os.PathLike) -> bool:
    """True when `root` was written by reprolib.dryrun.write_dryrun_root (holds DRYRUN_MARKER)."""
    return (Path(root) / DRYRUN_MARKER).is_file()


@contextlib.contextmanager
def bypassed_for_root(root: str | os.PathLike) -> Iterator[bool]:
    """The md5 bypass when `root` is a dry-run root, else nothing; yields whether it applies."""
    if not is_dryrun_root(root):
        yield False
        return
    with integrity_checks_bypassed():
        yield True
