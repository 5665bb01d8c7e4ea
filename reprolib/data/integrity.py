"""`integrity_checks_bypassed()`: let torchvision read synthetic CIFAR / SVHN / Flowers102.

A leaf module (it imports nothing from reprolib), so the data loaders can use it without an
import cycle through reprolib.dryrun: `bypassed_for_root(root)` applies the bypass exactly
when `root` is the data root of a loaded profile that declares `data_integrity: dryrun`
(only paper-dryrun does; `reprolib.config.validate` calls `trust_dryrun_root` with its
resolved data_root) AND the root holds the DRYRUN_MARKER file that
`reprolib.dryrun.write_dryrun_root` writes. A file alone never turns the check off: a data
folder can hold anything, and a crafted CIFAR batch that skips its md5 check is unpickled
by torchvision. The trusted roots live in this process only (a spawned sweep worker loads
its profile by name, which trusts the root again).

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


_TRUSTED_ROOTS: set[Path] = set()   # data roots of loaded `data_integrity: dryrun` profiles


def trust_dryrun_root(root: str | os.PathLike) -> None:
    """Allow the md5 bypass under `root`: called for the data root of a dry-run profile only."""
    _TRUSTED_ROOTS.add(Path(root).expanduser().resolve())


def is_dryrun_root(root: str | os.PathLike) -> bool:
    """True when `root` was written by reprolib.dryrun.write_dryrun_root (holds DRYRUN_MARKER)."""
    return (Path(root) / DRYRUN_MARKER).is_file()


def bypass_applies(root: str | os.PathLike) -> bool:
    """True when `root` is a dry-run profile's data root (trusted in this process) and is marked."""
    return Path(root).expanduser().resolve() in _TRUSTED_ROOTS and is_dryrun_root(root)


@contextlib.contextmanager
def bypassed_for_root(root: str | os.PathLike) -> Iterator[bool]:
    """The md5 bypass when `root` is a trusted dry-run root (bypass_applies), else nothing;
    yields whether it applies."""
    if not bypass_applies(root):
        yield False
        return
    with integrity_checks_bypassed():
        yield True
