"""`get_dataset`: one split of a registered dataset, read by the reader its DatasetInfo names.

The static facts (DatasetInfo, `info`, `names`) live in reprolib.data.catalog, which imports no
loader; an entry names its reader as "module:function" (`DatasetInfo.loader`), imported here when
a split is first read (`reader`), so the data package has no import cycle and a new reader is its
own module plus the entry. `info`, `names` and `DatasetInfo` are re-exported here for callers that
import them from the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from reprolib import paths
from reprolib.data.catalog import DatasetInfo, info, names
from reprolib.data.split import ImageSplit
from reprolib.errors import ReprolibError, check_choice, check_type

SPLITS = ("train", "test")
Reader = Callable[[str, str, Path, bool, int | None], ImageSplit]   # (name, split, root, download, size)

__all__ = ["SPLITS", "DatasetInfo", "get_dataset", "info", "names", "reader", "resolve_root"]


def reader(reference: str) -> Reader:
    """The reader a `DatasetInfo.loader` names ("module:function", module under reprolib.data).

    The embedded sets' readers serve their native side whatever `size` asks (images.to_network
    resizes them, as always), so the embedded study's inputs never change; the torchvision sets
    honour `size`. Glyphs are rendered offline and digits ship with sklearn: no download."""
    module, _, function = str(reference).partition(":")
    if not module.startswith("reprolib.data.") or not function:
        raise ReprolibError(f"dataset loader {reference!r} is not 'reprolib.data.<module>:<function>'")
    try:
        found = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        raise ReprolibError(f"dataset loader {reference!r} names no reader; valid: an existing "
                            "'reprolib.data.<module>:<function>'") from None
    return found


def resolve_root(root: str | Path | None) -> Path:
    """The data directory: `root` as given, or `<home>/data` (home: `reprolib.paths.home()`).

    `<home>/data` is where the profiles' `data_root: data` resolves too, so
    `get_dataset(name, split)` and a profile read the same caches.
    """
    if root is None:
        return paths.default_data_dir()
    check_type("root", root, (str, Path))
    return Path(root).expanduser()


def get_dataset(name: str, split: str, root: str | Path | None = None, download: bool = False,
                size: int | None = None) -> ImageSplit:
    """One split ("train" | "test") of dataset `name` as an ImageSplit.

    root: where caches and torchvision downloads live (default `<home>/data`, see reprolib.paths).
    download: allow torchvision (or Fashion-MNIST's) downloader; needs internet.
    size: for paper sets, the side to resize the originals to once (default: the prompt size;
    `DatasetInfo.served_side` says what is served); each side has its own cache file.
    Embedded sets ignore it and are served at their native side.
    """
    meta = info(name)
    check_type("split", split, str)
    check_choice("split", split, SPLITS)
    check_type("download", download, bool)
    if size is not None:
        check_type("size", size, int)
        if size < 1:
            raise ReprolibError(f"size must be a positive side in pixels or None (the prompt size), got {size}")
    root_dir = resolve_root(root)
    return reader(meta.loader)(name, split, root_dir, download, size)
