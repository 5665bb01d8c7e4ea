"""`python -m reprolib reprogrammer`: run the Reprogrammer study of a profile and print its table.

Records land under <artifacts>/reprogrammer/runs/ and finished ones are skipped, so a rerun is
cheap. `--encoder-only` just trains (or loads) the embedded stand-in encoder and reports its
zero-shot Fashion-MNIST accuracy.
"""

from __future__ import annotations

import argparse

from reprolib import paths
from reprolib.config import Fraction, Seed, load_profile, profile_help
from reprolib.devices import DEVICES
from reprolib.errors import option_type
from reprolib.reprogrammer.recipe import recipe_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help=profile_help() + " (default embedded)")
    parser.add_argument("--targets", nargs="+", default=None, help="target datasets (default: the profile's)")
    parser.add_argument("--alphas", nargs="+", type=option_type(Fraction, "--alphas"), default=None,
                        help="residual alphas to sweep (default 0 0.2 0.4 0.6 0.8 1)")
    parser.add_argument("--seed", type=option_type(Seed, "--seed"), default=None,
                        help="seed (default: the profile's first)")
    parser.add_argument("--device", default=None, choices=DEVICES, help="default: the profile's")
    parser.add_argument("--encoder-only", action="store_true", help="only train/load the encoder")


def results_folders(args: argparse.Namespace) -> list:
    """The study's records folder (locked while it runs: reprolib.cli)."""
    return [paths.reprogrammer_runs_dir(load_profile(args.profile).path("artifacts"))]


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: the study imports torch, which `--help` and bad flags should not wait for.
    from reprolib.reprogrammer.study import DEFAULT_ALPHAS, get_encoder, reprogrammer_table, run_reprogrammer_study

    overrides = {} if args.device is None else {"device": args.device}
    profile = load_profile(args.profile, **overrides)
    if args.encoder_only:
        recipe = recipe_for(profile)
        seed = args.seed if args.seed is not None else (profile.seeds[0] if profile.seeds else 1)
        _, info = get_encoder(profile, recipe, seed)
        print(info)
        return 0
    alphas = tuple(args.alphas) if args.alphas is not None else DEFAULT_ALPHAS
    records = run_reprogrammer_study(profile, targets=args.targets, alphas=alphas, seed=args.seed)
    table = reprogrammer_table(records)
    columns = ["target", "method", "alpha", "id_accuracy", "mean_covariate_accuracy", "mean_auroc", "mean_fpr95"]
    print(table[columns].round(3).to_string(index=False))
    print(f"{len(records)} records under {paths.reprogrammer_runs_dir(profile.path('artifacts'))}")
    return 0
