"""`python -m reprolib upstream --profile embedded`: train (or find) the dense upstream model.

The dense upstream model is IMP level 0 (`<artifacts>/tickets/imp/level_00`), so this is
the `tickets` command restricted to that level; it exists for backbones trained here
(registry spec `tickets="imp"`). Prints the model's path and source-task test accuracy.
"""

from __future__ import annotations

from reprolib.config import load_profile, profile_help
from reprolib.errors import ReprolibError
from reprolib.models import get_spec, names
from reprolib.sparsity.tickets import make_tickets


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default="embedded", help=profile_help() + " (default embedded)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Train (or find) the dense upstream model, i.e. IMP level 0, and print its accuracy."""
    profile = load_profile(args.profile)
    spec = get_spec(profile.backbone)
    if spec.tickets != "imp":
        trained_here = ", ".join(n for n in names() if get_spec(n).tickets == "imp")
        raise ReprolibError(f"profile {profile.profile} uses pretrained {profile.backbone} weights ({spec.weights}); "
                            f"upstream training is for backbones trained here: {trained_here}")
    (summary,) = make_tickets(profile, levels=[0], kinds=["imp"], progress=not args.quiet)
    print(f"dense upstream model: {summary['path']}  test accuracy {summary['upstream_test_accuracy']:.4f}"
          f"  ({summary['status']})")
    return 0
