"""One-shot tickets of pretrained backbones (spec `tickets="oneshot"`; the paper profile).

IMP needs ImageNet training, which the workbook cannot assume. For such a backbone
the `tickets` command therefore records, per requested (kind, level), the ticket that
`get_network` builds at load time: the ImageNet weights pruned ONCE by global magnitude to
0.8^level of the prunable weights (kind "magnitude"; a request for "imp" gets this too, and
is recorded as "magnitude"), or
randomly with those per-layer densities (kind "random"), with no retraining. These are not
lottery tickets in the IMP sense, and their reports say so.

Pruning is deterministic, so only the report (`sparsity.json`) is written: 9 levels of
ResNet-50 weights and masks would be about 1.7 GB of copies of one download. The density
table and notebook 01 read the reports; transfer runs prune again at load time. Tickets
made elsewhere (by IMP on ImageNet, say) are used through `--pretrained_dir`.
"""

from __future__ import annotations

from typing import Any

from reprolib.errors import check_choice
from reprolib.sparsity import masks as M
from reprolib.sparsity.network import get_network
from reprolib.sparsity.recipe import TicketRecipe, target_density

ONESHOT_KINDS = ("magnitude", "random")
NOTE = "one-shot pruning of torchvision ImageNet weights at load time; not retrained, not IMP"


def oneshot_reports(profile: Any, levels: list[int], kinds: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Write (or find) the sparsity.json of each (kind, level); returns the summaries."""
    recipe = TicketRecipe.for_profile(profile)
    out = []
    for requested in kinds:
        check_choice("ticket kind", requested, ("imp", *ONESHOT_KINDS))
        kind = "magnitude" if requested == "imp" else requested   # as get_network builds it
        for level in sorted(set(levels) - {0}):
            directory = M.ticket_dir(profile.path("artifacts"), kind, level)
            if M.is_complete(directory):
                out.append({**M.load_json(directory / "sparsity.json"), "path": str(directory), "status": "existing"})
                continue
            _, info = get_network(profile, network="LT", kind=kind, level=level)
            report = {"kind": kind, "level": level, "backbone": profile.backbone, "note": NOTE,
                      "density": info.density, "density_target": target_density(recipe, level),
                      "density_rlt": info.density_rlt, "upstream_test_accuracy": None,
                      "recipe": {"tickets": {"prune_fraction": recipe.prune_fraction, "exclude": recipe.exclude,
                                             "random_seed": recipe.random_seed}},
                      "train_seconds": 0.0}
            M.save_json(directory / "sparsity.json", report)
            out.append({**report, "path": str(directory), "status": "made"})
    return out
