"""`python -m reprolib data --prepare --profile P`: every image cache a profile's sweep reads, made first.

Every target of the profile at every side its methods load (MethodSpec.load_side), and each
target's OOD partners' test splits, into the image caches of the profile's data root
(reprolib.data.store): downloads where the profile allows them; offline, one line naming
what is missing, exit 2. Run it once before a sweep, so that no worker decodes a split.
This module sits above the data package (it reads the profile, the methods and the sweep's
arms); `data` without `--profile` is reprolib.data.cli.
"""

from __future__ import annotations

import argparse

from reprolib.data import cli as data_cli
from reprolib.data.catalog import info
from reprolib.errors import ReprolibError, UnsafeFile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data_cli.add_arguments(parser)
    parser.add_argument("--profile", default=None,
                        help="prepare every target and OOD partner of this profile, at the sides its methods load")


def profile_needs(profile) -> list[tuple[str, str, int | None]]:
    """(dataset, split, side) of every image cache a profile's sweep reads: each target at the
    sides its methods load (MethodSpec.load_side), and each OOD partner's test split."""
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.sweep.runner import parse_arm
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
    missing, done, causes = [], set(), []
    for dataset, split, side in profile_needs(profile):
        if dataset in missing:
            continue
        try:
            get_dataset(dataset, split, root=root, download=download, size=side)
        except UnsafeFile:   # not a missing set: say what is wrong with it
            raise
        except ReprolibError as err:
            missing.append(dataset)
            causes.append(str(err))
            continue
        if dataset not in done:
            done.add(dataset)
            print(f"{dataset:<14} ready under {root}", flush=True)
    if missing and download:   # the download itself failed: say why (offline, a moved address, a full disk)
        raise ReprolibError(f"profile {name} needs {', '.join(missing)}, not under {root}, and the download "
                            f"failed: {causes[0]}")
    if missing:
        raise ReprolibError(f"profile {name} needs {', '.join(missing)}, not under {root}; "
                            "valid choices: a profile with download: true (internet), or --download")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.profile is None:
        return data_cli.run(args)
    if args.list or args.datasets or args.root:
        raise ReprolibError("--profile prepares that profile's own datasets under its data_root; "
                            "valid choices: --profile alone (with --download), or --datasets/--root without it")
    return prepare_profile(args.profile, args.download)
