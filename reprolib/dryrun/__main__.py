"""`python -m reprolib.dryrun --root DIR`: write a paper dry-run data root (see reprolib.dryrun)."""

from __future__ import annotations

import argparse
import json
import sys

from reprolib.errors import ReprolibError


def main(argv: list[str] | None = None) -> int:
    from reprolib.dryrun import DEFAULT_ARCHS, arch_names, dataset_names, write_dryrun_root

    parser = argparse.ArgumentParser(prog="python -m reprolib.dryrun", description=__doc__)
    parser.add_argument("--root", required=True, help="the dry-run profile's data_root")
    parser.add_argument("--datasets", nargs="*", default=None, help=f"default: all of {' '.join(dataset_names())}")
    parser.add_argument("--archs", nargs="*", default=list(DEFAULT_ARCHS), help=f"from {' '.join(arch_names())}")
    parser.add_argument("--train", type=int, default=2, help="images per class, train split")
    parser.add_argument("--test", type=int, default=2, help="images per class, test split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-home", default=None, help="weights into TORCH_HOME/hub/checkpoints instead of "
                                                           "ROOT/torch_hub")
    args = parser.parse_args(argv)
    try:
        summary = write_dryrun_root(args.root, args.datasets, args.archs, n_per_class_train=args.train,
                                    n_per_class_test=args.test, seed=args.seed, torch_home=args.torch_home)
    except ReprolibError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
