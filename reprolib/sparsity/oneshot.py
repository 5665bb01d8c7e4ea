"""One-shot tickets of pretrained backbones (spec `tickets="oneshot"`; the paper profile).

IMP needs ImageNet training, which the workbook cannot assume. For such a backbone
the `tickets` command therefore records, per requested (kind, level), the ticket that
`get_network` builds at load time: the ImageNet weights pruned ONCE by global magnitude to
0.8^level of the prunable weights (kind "magnitude"; a request for "imp" gets this too, and
is recorded as "magnitude"), or
randomly with those per-layer densities (kind "random"), with no retraining. These are not
lottery tickets in the IMP sense, and their reports say so.

Their ImageNet accuracy cannot be measured offline (no ImageNet images here), so a report
also carries `agreement_with_dense`: the fraction of the profile's offline (embedded) targets'
test images on which the pruned network's source top-1 equals the dense network's, each image
shown as LP shows it (resized to the input, channels matched). It is a proxy, named
"agreement with dense, not ImageNet accuracy" in the report; None when no target is offline
(the paper profiles, whose sets may need a download).

Pruning is deterministic, so only the report (`sparsity.json`) is written: 9 levels of
ResNet-50 weights and masks would be about 1.7 GB of copies of one download. The density
table and notebook 01 read the reports; transfer runs prune again at load time. Tickets
made elsewhere (by IMP on ImageNet, say) are used through `--pretrained_dir`.
"""

from __future__ import annotations

from typing import Any

import torch

from reprolib.batching import predict
from reprolib.data.catalog import info as dataset_info
from reprolib.data.registry import get_dataset
from reprolib.errors import check_choice
from reprolib.images import to_network_in_chunks
from reprolib.sparsity import masks as M
from reprolib.sparsity.network import get_network
from reprolib.sparsity.recipe import TicketRecipe, target_density

ONESHOT_KINDS = ("magnitude", "random")
NOTE = "one-shot pruning of pretrained ImageNet weights at load time; not retrained, not IMP"
AGREEMENT_NOTE = "agreement with dense, not ImageNet accuracy: top-1 source-class agreement on the targets' test images"
AGREEMENT_BATCH = 256


def offline_test_images(profile: Any) -> dict[str, torch.Tensor]:
    """The test images of the profile's embedded (offline) targets, as [0, 1] tensors, by target."""
    root = profile.path("data_root")
    return {name: get_dataset(name, "test", root=root).tensors()[0]
            for name in profile.targets if dataset_info(name).kind == "embedded"}


def source_top1(backbone: Any, images: torch.Tensor) -> torch.Tensor:
    """The backbone's source-class top-1 of each image, shown as LP shows it (resized, channels matched)."""
    inputs = to_network_in_chunks(images, backbone.channels, backbone.input_size)
    return predict(lambda x: backbone(backbone.normalize(x)), inputs, AGREEMENT_BATCH).argmax(1)


def agreement_with_dense(dense_top1: dict[str, torch.Tensor], pruned: Any,
                         images: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """Per target and overall, the share of images where `pruned`'s top-1 is the dense one's."""
    if not images:
        return None
    same = {name: source_top1(pruned, x).eq(dense_top1[name]) for name, x in images.items()}
    total = torch.cat(list(same.values()))
    share = lambda hits: int(hits.sum()) / max(1, hits.numel())   # exact fraction, not float32
    return {"overall": share(total), "per_target": {n: share(v) for n, v in same.items()},
            "n_images": int(total.numel()), "note": AGREEMENT_NOTE}


def oneshot_reports(profile: Any, levels: list[int], kinds: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Write (or find) the sparsity.json of each (kind, level); returns the summaries.

    Each new report carries `agreement_with_dense` (see the module docstring), computed once
    against the dense network's top-1 on the profile's offline targets.
    """
    recipe = TicketRecipe.for_profile(profile)
    images, dense_top1 = None, None
    out = []
    for requested in kinds:
        check_choice("ticket kind", requested, ("imp", *ONESHOT_KINDS))
        kind = "magnitude" if requested == "imp" else requested   # as get_network builds it
        for level in sorted(set(levels) - {0}):
            directory = M.ticket_dir(profile.path("artifacts"), kind, level)
            if M.is_complete(directory):
                out.append({**M.load_json(directory / "sparsity.json"), "path": str(directory), "status": "existing"})
                continue
            if images is None:   # once, and only when a report is made
                images = offline_test_images(profile)
                dense = get_network(profile, network="dense")[0] if images else None
                dense_top1 = {name: source_top1(dense, x) for name, x in images.items()}
            pruned, info = get_network(profile, network="LT", kind=kind, level=level)
            report = {"kind": kind, "level": level, "backbone": profile.backbone, "note": NOTE,
                      "density": info.density, "density_target": target_density(recipe, level),
                      "density_rlt": info.density_rlt, "upstream_test_accuracy": None,
                      "recipe": {"tickets": {"prune_fraction": recipe.prune_fraction, "exclude": recipe.exclude,
                                             "random_seed": recipe.random_seed}},
                      "train_seconds": 0.0,
                      "agreement_with_dense": agreement_with_dense(dense_top1, pruned, images)}
            report = M.save_report(directory, report)
            out.append({**report, "path": str(directory), "status": "made"})
    return out
