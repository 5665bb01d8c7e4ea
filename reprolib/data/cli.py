"""`python -m reprolib data`: prepare the offline datasets, or list every dataset.

    python -m reprolib data --prepare [--root DIR] [--download]
        Fashion-MNIST readable, digits loaded, glyphs built and cached; one line each.
    python -m reprolib data --prepare --profile P
        every target and OOD partner of profile P (reprolib.sweep.prepare).
    python -m reprolib data --list
        every registered dataset with its kind, classes, image and prompt sizes.
"""

from __future__ import annotations

import argparse
import time

from reprolib.data.catalog import info, names
from reprolib.errors import ReprolibError
from reprolib.records import check_output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--prepare", action="store_true", help="check/build the embedded datasets (default)")
    action.add_argument("--list", action="store_true", help="list the registered datasets")
    parser.add_argument("--root", default=None, help="data directory for caches and downloads (default: <home>/data; home = $REPROLIB_HOME, the checkout you stand in, or the cwd)")
    parser.add_argument("--download", action="store_true", help="allow downloads (Fashion-MNIST fallback; needs internet)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="datasets to prepare (default: the embedded ones: fashion_mnist digits glyphs)")



def _describe(name: str, root: str | None, download: bool) -> str:
    from reprolib.data.registry import get_dataset   # here, so `--list` never imports torch

    start = time.perf_counter()
    train = get_dataset(name, "train", root=root, download=download)
    test = get_dataset(name, "test", root=root, download=download)
    seconds = time.perf_counter() - start
    meta = train.info
    return (f"{name:<14} train {len(train):>6}  test {len(test):>6}  classes {meta.num_classes:>3}  "
            f"{meta.channels}x{meta.image_size}x{meta.image_size}  ({seconds:.1f} s)  split: {train.split_note}")


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name in names():
            meta = info(name)
            print(f"{name:<14} {meta.kind:<9} classes {meta.num_classes:>3}  image {meta.channels}x"
                  f"{meta.image_size}x{meta.image_size}  prompt {meta.prompt_size}")
        return 0
    if args.root is not None:   # before any work: a file, a path under a file, a read-only folder
        check_output_dir(args.root, "--root")
    targets = args.datasets or names("embedded")
    for name in targets:
        info(name)  # unknown names fail before any work
    for name in targets:
        print(_describe(name, args.root, args.download), flush=True)
    if not targets:
        raise ReprolibError("no datasets to prepare")
    return 0
