"""`python -m reprolib tickets [make|import|fetch|list|evaluate] ...`

- `tickets [make] --profile embedded [--levels 0-8] [--kinds imp,magnitude,random]`: makes the
  missing ticket levels (existing ones are kept) and prints a density table. Defaults: IMP
  at levels 0..max(profile.levels) (IMP needs every level in between), the profile's
  baselines at profile.baseline_level (what the sweep uses). An explicit --levels applies to
  every kind unless --baseline-levels gives the baselines their own levels. It also imports
  the profile's `tickets.imported` entries that name a file.
- `tickets import FILE --name NAME [--mask MASK|zeros] [--backbone B]`: puts a checkpoint made
  elsewhere into `<artifacts>/tickets/imported/NAME` with its sparsity report.
- `tickets fetch NAME [--url URL] [--sha256 HEX]`: downloads a curated checkpoint
  (`reprolib.sparsity.catalog`, docs/tickets.md), verifies its checksum when one is
  known, imports it; offline it fails with one line.
- `tickets list`: the curated table and the imported tickets.
- `tickets evaluate --imagenet DIR`: measures every ticket's ImageNet top-1 on DIR/val and
  stores it in the ticket's report (`reprolib.sparsity.imagenet`).
- `tickets prune --imagenet DIR [--levels 0-8] [--device cuda] [--submitit FOLDER --tasks N]`:
  makes IMP / GMP tickets on ImageNet with the profile's `tickets.imagenet` recipe
  (`reprolib.sparsity.imagenet_prune`); run it under torchrun for several GPUs or processes.
"""

from __future__ import annotations

import os

from reprolib.config import Count, load_profile, profile_help
from reprolib.errors import ReprolibError, check_choice, option_type
from reprolib.sparsity import catalog, imported
from reprolib.sparsity.masks import MADE_KINDS
from reprolib.sparsity.tickets import import_profile_tickets, make_tickets

ACTIONS = ("make", "import", "fetch", "list", "evaluate", "prune")


def parse_levels(text: str, flag: str = "--levels") -> list[int]:
    """"0-8" -> [0..8]; "0,2,4" -> [0, 2, 4]; "0-2,5" -> [0, 1, 2, 5]."""
    levels: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            levels.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ReprolibError(f"bad {flag} {text!r}; valid forms: '0-8', '0,2,4', '0-2,5'") from None
    if not levels:
        raise ReprolibError(f"bad {flag} {text!r}: no levels; valid forms: '0-8', '0,2,4'")
    return sorted(levels)


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", default="make", help=f"{' | '.join(ACTIONS)} (default make)")
    parser.add_argument("target", nargs="?", default=None, help="import: the checkpoint FILE; fetch: the curated NAME")
    parser.add_argument("--name", default=None, help="import: the ticket's name (letters, digits, . _ -)")
    parser.add_argument("--mask", default=None, help="import: a mask file, or 'zeros' (default for one file: "
                                                     "the file's own mask, else its exact zeros)")
    parser.add_argument("--backbone", default=None, help="import: registry backbone (default: the profile's)")
    parser.add_argument("--source", default=None, help="import: where the checkpoint came from (stored in its report)")
    parser.add_argument("--url", default=None, help="fetch: download from this address instead of the table's")
    parser.add_argument("--sha256", default=None, help="fetch: the checksum to verify")
    parser.add_argument("--imagenet", default=None, help="evaluate: ImageNet folder (ImageFolder train/ and val/)")
    parser.add_argument("--max-images", type=option_type(Count, "--max-images"), default=None,
                        help="evaluate: first N val images (default all)")
    parser.add_argument("--device", default="cpu", help="evaluate / prune: cpu | cuda (default cpu)")
    parser.add_argument("--submitit", default=None, help="prune: submit through submitit, logs in this folder")
    parser.add_argument("--cluster", default=None, help="prune --submitit: slurm | local | debug (default: auto)")
    parser.add_argument("--tasks", type=option_type(Count, "--tasks"), default=1,
                        help="prune --submitit: processes (GPUs) in the job")
    parser.add_argument("--profile", default="embedded", help=profile_help() + " (default embedded)")
    parser.add_argument("--levels", default=None, help="'0-8' or '0,2,4' (default: 0..max of the profile's levels)")
    parser.add_argument("--baseline-levels", default=None,
                        help="levels of the magnitude / random baselines (default: --levels if given, "
                             "else the profile's baseline_level)")
    parser.add_argument("--kinds", default=None, help="comma list of imp, magnitude, random "
                                                      "(default: imp + the profile's baselines)")
    parser.add_argument("--replicates", default=None,
                        help="IMP ticket replicates to make, '1-4' or '1,3' (default: 1..the profile's replicates; "
                             "the baselines are made for replicate 1, which the sweep compares)")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes making replicates in parallel (default 0: one per CPU core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    check_choice("tickets action", args.action, ACTIONS)
    if args.action != "make":
        return _RUNNERS[args.action](args)
    if args.target is not None:
        raise ReprolibError(f"unexpected argument {args.target!r}; valid forms: tickets [make] --profile P, "
                            "tickets import FILE --name NAME, tickets fetch NAME")
    profile = load_profile(args.profile)
    kinds = ["imp", *profile.baselines] if args.kinds is None else [k.strip() for k in args.kinds.split(",")]
    for kind in kinds:
        check_choice("ticket kind", kind, MADE_KINDS)
    imp_levels = list(range(max(profile.levels) + 1)) if args.levels is None else parse_levels(args.levels)
    if args.baseline_levels is not None:
        baseline_levels = parse_levels(args.baseline_levels, "--baseline-levels")
    else:
        baseline_levels = [profile.baseline_level] if args.levels is None else imp_levels
    replicates = (list(range(1, profile.replicates + 1)) if args.replicates is None
                  else parse_levels(args.replicates, "--replicates"))
    if args.workers < 0 or min(replicates) < 1:
        raise ReprolibError(f"--workers {args.workers} / --replicates {args.replicates}: valid choices are "
                            "workers >= 0 (0: one per core) and replicates >= 1")
    summaries = []
    if "imp" in kinds:
        summaries += make_tickets(profile, imp_levels, ["imp"], progress=not args.quiet, replicates=replicates,
                                  workers=args.workers or os.cpu_count() or 1)
    baselines = [k for k in kinds if k != "imp"]
    if baselines:
        summaries += make_tickets(profile, baseline_levels, baselines, progress=not args.quiet)
    print(format_table(summaries))
    for report in import_profile_tickets(profile):
        print(f"imported ticket {report['name']}: density {report['density']:.4f} ({report['status']})")
    return 0


def _import(args) -> int:
    if args.target is None or args.name is None:
        raise ReprolibError("tickets import needs FILE and --name NAME; valid form: tickets import FILE --name NAME")
    profile = load_profile(args.profile)
    report = imported.import_ticket(args.target, args.name, profile.path("artifacts"),
                                    args.backbone or profile.backbone, mask=args.mask, source=args.source)
    print(format_report(report))
    return 0


def _fetch(args) -> int:
    if args.target is None:
        raise ReprolibError(f"tickets fetch needs NAME; valid choices: {', '.join(catalog.names())}")
    profile = load_profile(args.profile)
    report = imported.fetch_ticket(args.target, profile.path("artifacts"), url=args.url, sha256=args.sha256)
    verified = "verified" if report["checksum_verified"] else "not verified (no checksum known)"
    print(f"{format_report(report)}\nsha256 {report['download_sha256']} {verified}")
    return 0


def _list(args) -> int:
    rows = [f"{'name':<28}{'backbone':<10}{'sparsity':>9}{'top-1':>8}  address"]
    rows += [f"{e.name:<28}{e.backbone:<10}{e.sparsity:>9.2%}{e.published_top1:>8.2%}  {e.url or e.page}"
             for e in catalog.TABLE]
    profile = load_profile(args.profile)
    rows += ["", f"imported into {profile.profile}:"]
    rows += [format_report(r) for r in imported.imported_reports(profile.path("artifacts"))] or ["  (none)"]
    print("\n".join(rows))
    return 0


def _evaluate(args) -> int:
    from reprolib.sparsity.imagenet import evaluate_tickets   # imports torchvision: only for this action

    if args.imagenet is None:
        raise ReprolibError("tickets evaluate needs --imagenet DIR (an ImageFolder with val/)")
    for row in evaluate_tickets(load_profile(args.profile), args.imagenet, max_images=args.max_images,
                                device=args.device):
        print(f"{row['ticket']:<40} top-1 {row['top1']:.4f} on {row['images']} images")
    return 0


def _prune(args) -> int:
    from reprolib.sparsity import imagenet_prune   # imports torchvision: only for this action

    if args.imagenet is None:
        raise ReprolibError("tickets prune needs --imagenet DIR (an ImageFolder with train/ and val/)")
    profile = load_profile(args.profile)
    levels = parse_levels(args.levels) if args.levels else list(range(max(profile.levels) + 1))
    if args.submitit:
        job = imagenet_prune.submit_pruning(args.profile, args.imagenet, levels, args.submitit, args.cluster, args.tasks)
        print(f"submitted job {job.job_id} (logs in {args.submitit})")
        reports = job.result() if args.cluster == "debug" else []
    else:
        reports = imagenet_prune.prune_on_imagenet(profile, args.imagenet, levels, args.device)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0   # under torchrun, rank 0 alone reports
    for r in reports:
        print(f"imp level {r['level']:>2}: density {r['density']:.4f} top-1 {r['upstream_test_accuracy']:.4f} ({r['status']})")
    return 0


_RUNNERS = {"import": _import, "fetch": _fetch, "list": _list, "evaluate": _evaluate, "prune": _prune}


def format_report(report: dict) -> str:
    """One line per imported ticket: name, density in both conventions, published / measured top-1."""
    published = report.get("published_top1")
    measured = report.get("upstream_test_accuracy")
    return (f"{report['name']}: {report.get('status', 'imported')} at {report['path']}; density {report['density']:.4f} "
            f"(rlt {report['density_rlt']:.4f}), format {report['format']}, keys {report['key_naming']}, "
            f"published top-1 {'n/a' if published is None else f'{published:.4f}'}, "
            f"measured top-1 {'not measured' if measured is None else f'{measured:.4f}'}")


def format_table(summaries: list[dict]) -> str:
    """Plain-text table of (kind, level, target 0.8^L, measured density, RLT density, accuracy)."""
    head = f"{'kind':<10}{'level':>6}{'target':>9}{'density':>9}{'rlt':>9}{'test acc':>10}{'train s':>9}  status"
    rows = [head, "-" * len(head)]
    for s in summaries:
        kind = s["kind"] if s.get("replicate", 1) == 1 else f"{s['kind']} r{s['replicate']}"   # ticket replicate
        rows.append(f"{kind:<10}{s['level']:>6}{s['density_target']:>9.4f}{s['density']:>9.4f}"
                    f"{s['density_rlt']:>9.4f}{_accuracy(s['upstream_test_accuracy']):>10}{s['train_seconds']:>9.1f}"
                    f"  {s['status']}")
    return "\n".join(rows)


def _accuracy(value: float | None) -> str:
    """Upstream accuracy, or n/a (one-shot ImageNet tickets are not evaluated on ImageNet here)."""
    return "n/a" if value is None else f"{value:.4f}"
