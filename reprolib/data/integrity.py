"""No code from a data file (`pickles_restricted`), and `integrity_checks_bypassed()`: let
torchvision read synthetic CIFAR / SVHN / Flowers102.

torchvision reads CIFAR-10/100 batches with `pickle.load`, which runs whatever a crafted file asks
for. Every CIFAR read in reprolib (`pickles_restricted()`, whatever the root and whatever the md5
said) goes through `DataUnpickler`, which admits plain containers, strings, numbers and numpy
arrays only (the globals in SAFE_GLOBALS: what a real or a dry-run batch holds); a file that
asks for anything else is named in one line and nothing of it runs. SVHN and Flowers102 are
MATLAB files (scipy.io.loadmat builds arrays, no objects); the other sets are images.

A leaf module (it imports only reprolib.errors), so the data loaders can use it without an
import cycle through reprolib.dryrun: `bypassed_for_root(root)` applies the bypass exactly
when `root` is the data root of a loaded profile that declares `data_integrity: dryrun`
(only reprolib's own paper-dryrun may: `reprolib.config.load_profile` refuses the key from a
user's file or a parameter, and calls `trust_dryrun_root` with the resolved data_root) AND
the root holds the DRYRUN_MARKER file that `reprolib.dryrun.write_dryrun_root` writes. A file
alone never turns the check off: a data folder can hold anything. Even there, a CIFAR batch is
read by the restricted unpickler, so a skipped md5 check can let wrong numbers in, never code.
The trusted roots live in this process only (a spawned sweep worker loads its profile by
name, which trusts the root again).

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
import io
import os
import pickle
import types
from collections.abc import Iterator
from pathlib import Path

from reprolib.errors import UnsafeFile

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


# What a CIFAR batch may pickle besides containers, strings and numbers: numpy arrays (protocols 2-4:
# _reconstruct; 5: _frombuffer), dtypes and scalars under numpy 1's and 2's module names, and the bytes
# of protocol 2 (`_codecs.encode` of a latin-1 string).
SAFE_GLOBALS = {(f"numpy.{core}.{module}", name) for core in ("core", "_core")
                for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))}
SAFE_GLOBALS |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
RESTRICTED_MODULES = ("torchvision.datasets.cifar",)   # the torchvision readers that pickle.load data


class UnsafePickle(pickle.UnpicklingError):
    """A data file asked the unpickler for a global outside SAFE_GLOBALS."""


class DataUnpickler(pickle.Unpickler):
    """An unpickler that builds containers, strings, numbers and numpy arrays, and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickle(f"{module}.{name}")


def load_data_pickle(file: io.BufferedIOBase, **kwargs):
    """pickle.load for data files (the signature torchvision calls): DataUnpickler; a file that asks
    for code is one line naming it and what it asked for."""
    try:
        return DataUnpickler(file, **kwargs).load()
    except UnsafePickle as err:
        raise UnsafeFile(f"{getattr(file, 'name', 'this pickle')} is not a data file reprolib can read safely: it "
                            f"pickles {err}, which no dataset holds; nothing of it ran; valid: the dataset's "
                            "own files (delete this one and download or write the set again)") from None


@contextlib.contextmanager
def pickles_restricted() -> Iterator[None]:
    """Within the block, torchvision's CIFAR reader unpickles with `load_data_pickle`."""
    shim = types.SimpleNamespace(load=load_data_pickle, UnpicklingError=pickle.UnpicklingError)
    modules = [importlib.import_module(name) for name in RESTRICTED_MODULES]
    originals = [module.pickle for module in modules]
    try:
        for module in modules:
            module.pickle = shim
        yield
    finally:
        for module, original in zip(modules, originals):
            module.pickle = original


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
