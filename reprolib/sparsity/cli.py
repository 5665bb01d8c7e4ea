"""`python -m reprolib tickets --profile embedded [--levels 0-8] [--kinds imp,magnitude,random]`

Makes the missing ticket levels (existing ones are kept) and prints a density table.
Defaults: IMP at levels 0..max(profile.levels) (IMP needs every level in between), the
profile's baselines at profile.baseline_level (what the sweep uses). An explicit --levels
applies to every kind unless --baseline-levels gives the baselines their own levels.
"""

from __future__ import annotations

from reprolib.config import load_profile
from reprolib.errors import ReprolibError, check_choice
from reprolib.sparsity.masks import KINDS
from reprolib.sparsity.tickets import make_tickets


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
    parser.add_argument("--profile", default="embedded", help="smoke | embedded | paper (default embedded)")
    parser.add_argument("--levels", default=None, help="'0-8' or '0,2,4' (default: 0..max of the profile's levels)")
    parser.add_argument("--baseline-levels", default=None,
                        help="levels of the magnitude / random baselines (default: --levels if given, "
                             "else the profile's baseline_level)")
    parser.add_argument("--kinds", default=None, help="comma list of imp, magnitude, random "
                                                      "(default: imp + the profile's baselines)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    profile = load_profile(args.profile)
    kinds = ["imp", *profile.baselines] if args.kinds is None else [k.strip() for k in args.kinds.split(",")]
    for kind in kinds:
        check_choice("ticket kind", kind, KINDS)
    imp_levels = list(range(max(profile.levels) + 1)) if args.levels is None else parse_levels(args.levels)
    if args.baseline_levels is not None:
        baseline_levels = parse_levels(args.baseline_levels, "--baseline-levels")
    else:
        baseline_levels = [profile.baseline_level] if args.levels is None else imp_levels
    summaries = []
    if "imp" in kinds:
        summaries += make_tickets(profile, imp_levels, ["imp"], progress=not args.quiet)
    baselines = [k for k in kinds if k != "imp"]
    if baselines:
        summaries += make_tickets(profile, baseline_levels, baselines, progress=not args.quiet)
    print(format_table(summaries))
    return 0


def format_table(summaries: list[dict]) -> str:
    """Plain-text table of (kind, level, target 0.8^L, measured density, RLT density, accuracy)."""
    head = f"{'kind':<10}{'level':>6}{'target':>9}{'density':>9}{'rlt':>9}{'test acc':>10}{'train s':>9}  status"
    rows = [head, "-" * len(head)]
    for s in summaries:
        rows.append(f"{s['kind']:<10}{s['level']:>6}{s['density_target']:>9.4f}{s['density']:>9.4f}"
                    f"{s['density_rlt']:>9.4f}{_accuracy(s['upstream_test_accuracy']):>10}{s['train_seconds']:>9.1f}"
                    f"  {s['status']}")
    return "\n".join(rows)


def _accuracy(value: float | None) -> str:
    """Upstream accuracy, or n/a (one-shot ImageNet tickets are not evaluated on ImageNet here)."""
    return "n/a" if value is None else f"{value:.4f}"
