"""`python -m reprolib data`: prepare the offline datasets, or list every dataset.

    python -m reprolib data --prepare [--root DIR] [--download]
        Fashion-MNIST readable, digits loaded, glyphs built and cached; one line each.
    python -m reprolib data --prepare --profile P
        every target and OOD partner of profile P, at every side its methods load, into the
        image caches of the profile's data root (downloads where the profile allows them;
        offline, one line naming what is missing, exit 2): run it once before a sweep.
    python -m reprolib data --list
        every registered dataset with its kind, classes, image and prompt sizes.
"""

from __future__ import annotations

import argparse
import time

from reprolib.data.catalog import info, names
from reprolib.errors import ReprolibError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--prepare", action="store_true", help="check/build the embedded datasets (default)")
    action.add_argument("--list", action="store_true", help="list the registered datasets")
    parser.add_argument("--root", default=None, help="data directory for caches and downloads (default: <home>/data; home = $REPROLIB_HOME, the checkout you stand in, or the cwd)")
    parser.add_argument("--download", action="store_true", help="allow downloads (Fashion-MNIST fallback; needs internet)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="datasets to prepare (default: the embedded ones: fashion_mnist digits glyphs)")
    parser.add_argument("--profile", default=None,
                        help="prepare every target and OOD partner of this profile, at the sides its methods load")


def _describe(name: str, root: str | None, download: bool) -> str:
    from reprolib.data.registry import get_dataset   # here, so `--list` never imports torch

    start = time.perf_counter()
    train = get_dataset(name, "train", root=root, download=download)
    test = get_dataset(name, "test", root=root, download=download)
    seconds = time.perf_counter() - start
    meta = train.info
    return (f"{name:<14} train {len(train):>6}  test {len(test):>6}  classes {meta.num_classes:>3}  "
            f"{meta.channels}x{meta.image_size}x{meta.image_size}  ({seconds:.1f} s)  split: {train.split_note}")


def profile_needs(profile) -> list[tuple[str, str, int | None]]:
    """(dataset, split, side) of every image cache a profile's sweep reads: each target at the
    sides its methods load (MethodSpec.load_side), and each OOD partner's test split."""
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.sweep import parse_arm
    from reprolib.transfer import registry as methods
    from reprolib.transfer.ood_eval import ood_partners

    backbone, protocol = get_spec(profile.backbone), get_protocol(profile.protocol)
    needs = []
    for target in profile.targets:
        for arm in profile.methods:
            spec = methods.get(parse_arm(arm)[0])
            needs += [(target, split, spec.load_side(backbone, info(target), protocol, split))
                      for split in ("train", "test")]
        needs += [(partner, "test", None) for partner in ood_partners(target, profile)]
    return list(dict.fromkeys(needs))


def prepare_profile(name: str, download: bool) -> int:
    """Build every cache `profile_needs` lists; one line per dataset, one error line naming the missing."""
    from reprolib.config import load_profile
    from reprolib.data.registry import get_dataset

    profile = load_profile(name)
    root, download = profile.path("data_root"), download or profile.download
    missing, done = [], set()
    for dataset, split, side in profile_needs(profile):
        if dataset in missing:
            continue
        try:
            get_dataset(dataset, split, root=root, download=download, size=side)
        except ReprolibError:
            missing.append(dataset)
            continue
        if dataset not in done:
            done.add(dataset)
            print(f"{dataset:<14} ready under {root}", flush=True)
    if missing:
        raise ReprolibError(f"profile {name} needs {', '.join(missing)}, not under {root}; "
                            "valid choices: a profile with download: true (internet), or --download")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.profile is not None:
        if args.list or args.datasets or args.root:
            raise ReprolibError("--profile prepares that profile's own datasets under its data_root; "
                                "valid choices: --profile alone (with --download), or --datasets/--root without it")
        return prepare_profile(args.profile, args.download)
    if args.list:
        for name in names():
            meta = info(name)
            print(f"{name:<14} {meta.kind:<9} classes {meta.num_classes:>3}  image {meta.channels}x"
                  f"{meta.image_size}x{meta.image_size}  prompt {meta.prompt_size}")
        return 0
    targets = args.datasets or names("embedded")
    for name in targets:
        info(name)  # unknown names fail before any work
    for name in targets:
        print(_describe(name, args.root, args.download), flush=True)
    if not targets:
        raise ReprolibError("no datasets to prepare")
    return 0
