"""`python -m reprolib transfer`: one transfer run from the command line.

Takes the public scripts' flags (`--network dense|LT --sparsity S --pretrained_dir DIR
--n_shot N --batch_size B --dataset X --results_path R`), so their README commands
translate one to one, plus `--method`, `--label_map`, `--protocol`, `--seed`, `--profile`,
`--device`, `--epochs`, `--kind`, `--select_best_on_val`, `--force`, `--no_progress`.
Prints one summary line: accuracy, ECE and the record's path.
"""

from __future__ import annotations

import argparse

from reprolib.config import Count, NonNegative, Seed, Shots, profile_help
from reprolib.determinism import pin_threads
from reprolib.data import names as dataset_names
from reprolib.errors import option_type
from reprolib.models.registry import names as backbone_names
from reprolib.protocols import names as protocol_names
from reprolib.records import check_output_dir
from reprolib.transfer.config import DEVICES, LABEL_MAPS, METHODS, NETWORKS, TICKET_KINDS, TransferConfig
from reprolib.transfer.run import record_path, run_transfer
from reprolib.transfer.labelmap import default_label_map, get_label_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The public code's flags (ILM-VP / Reprogram_LT scripts).
    parser.add_argument("--network", default="dense", choices=NETWORKS, help="dense model or a lottery ticket")
    parser.add_argument("--sparsity", type=option_type(NonNegative, "--sparsity"), default=0,
                        help="ticket level / sparsity state S (keeps 0.8^S)")
    parser.add_argument("--pretrained_dir", default=None, help="directory with the ticket files (RLT or ours)")
    parser.add_argument("--n_shot", type=option_type(Shots, "--n_shot"), default=-1,
                        help="training images per class; -1 = all")
    parser.add_argument("--batch_size", type=option_type(Count, "--batch_size"), default=None,
                        help="training batch (default: the protocol's)")
    parser.add_argument("--dataset", default="digits", choices=dataset_names(), help="target dataset")
    parser.add_argument("--results_path", default=None, help="record directory (default: <artifacts>/runs)")
    # Ours.
    parser.add_argument("--method", default="vp", choices=METHODS)
    parser.add_argument("--label_map", default=None, choices=(*LABEL_MAPS, "none"),
                        help=f"output label mapping (default {default_label_map()}; lp takes none): "
                        + "; ".join(f"{name}: {get_label_map(name).summary}" for name in LABEL_MAPS))
    parser.add_argument("--kind", default="imp", choices=TICKET_KINDS, help="ticket kind for --network LT")
    parser.add_argument("--replicate", type=int, default=1, help="ticket replicate (another IMP run; default 1)")
    parser.add_argument("--protocol", default=None, choices=protocol_names(),
                        help="training preset (default: the profile's)")
    parser.add_argument("--seed", type=option_type(Seed, "--seed"), default=None, help="default: the protocol's seed")
    parser.add_argument("--profile", default="embedded", help=profile_help())
    parser.add_argument("--device", default=None, choices=DEVICES, help="default: the profile's")
    parser.add_argument("--epochs", type=option_type(Count, "--epochs"), default=None,
                        help="override the protocol's epochs")
    parser.add_argument("--backbone", default=None, choices=backbone_names(), help="default: the profile's")
    parser.add_argument("--select_best_on_val", action="store_true",
                        help="report the epoch best on a validation split carved from train")
    parser.add_argument("--force", action="store_true", help="rerun even if the record exists")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TransferConfig:
    return TransferConfig(
        profile=args.profile, target=args.dataset, method=args.method,
        label_map=args.label_map,   # "none": LP's only choice, an error for prompt methods
        network=args.network, kind=args.kind, level=args.sparsity, pretrained_dir=args.pretrained_dir,
        replicate=args.replicate, n_shot=args.n_shot, seed=args.seed, protocol=args.protocol, batch_size=args.batch_size,
        epochs=args.epochs, backbone=args.backbone, device=args.device, results_path=args.results_path,
        select_best_on_val=args.select_best_on_val, progress=False if args.no_progress else None,
    )


def results_folders(args: argparse.Namespace) -> list:
    """The run's records folder (locked while it runs: reprolib.cli), checked before any training: a
    file, a path under a file, a read-only folder."""
    cfg = config_from_args(args)
    if cfg.results_path is not None:
        check_output_dir(cfg.results_path, "--results_path")
    path = record_path(cfg)
    check_output_dir(path.parent, "the records folder")
    return [path.parent]


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    path = record_path(cfg)
    pin_threads()   # the protocol's CPU threads (reprolib.determinism): same numbers on any core count
    existed = path.is_file() and not args.force
    record = run_transfer(cfg, force=args.force)
    m = record["metrics"]
    status = "existing record" if existed else f"{record['wall_time_s']:.1f} s"
    print(f"{cfg.method}{'/' + cfg.label_map if cfg.label_map else ''} on {cfg.target}: "
          f"accuracy {m['accuracy']:.4f}  ECE {m['ece']:.4f}  ({status})  record {path}")
    return 0
