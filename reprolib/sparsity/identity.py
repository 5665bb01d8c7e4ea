"""What a run's network IS, for its identity: provenance, pruning recipe, and a digest of the
weights and mask that `get_network` loads for the same arguments.

The grid names a network by (network, kind, level, pretrained_dir), but which weights those names
load depends on the disk: our ticket layout, an imported folder, or the pretrained weights pruned
once at load until `tickets prune --imagenet` makes real IMP levels (network.in_our_layout). A run
id built from the names alone would let a sweep reuse the records of the old network after the
tickets are made or remade. `network_fingerprint` follows get_network's choice and digests what
that choice loads (reprolib.sparsity.digest: the tensors' values, not the files' bytes):

- our layout and imported tickets: the model's and the mask's tensors (`model.pth`, `mask.pth`);
- a ticket in another format (`pretrained_dir`): the loaded network's state and mask;
- pretrained weights: their tensors, plus for a one-shot level the pruning recipe (rule, level,
  target density, what stays dense, the random seed), which fixes the mask given the weights.

The names themselves are not part of it: two names of one network are one run.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from reprolib import paths
from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.models import get_spec
from reprolib.models.build import pretrained_state
from reprolib.sparsity import digest
from reprolib.sparsity.load import read_ticket
from reprolib.sparsity.network import imported_dir, in_our_layout, layout_dir, oneshot_kind
from reprolib.sparsity.recipe import TicketRecipe, target_density


def network_fingerprint(profile: Any, network: str, kind: str, level: int,
                        pretrained_dir: str | None, replicate: int = 1) -> dict[str, Any]:
    """{"provenance", "digest"} (+ "weights" and "recipe" for pretrained weights) of the network
    get_network(profile, network, kind, level, pretrained_dir, replicate) loads; a missing ticket
    is the one-line error get_network gives. A ticket replicate is other weights, so its digest
    differs: the replicate needs no key of its own."""
    if kind == "imported":
        return _files("imported", imported_dir(profile, pretrained_dir))
    if network == "LT" and pretrained_dir is not None:
        return {"provenance": "external", "digest": _external_digest(profile.backbone, pretrained_dir, level)}
    if in_our_layout(profile, network, kind, level):
        dense = network == "dense" or level == 0
        return _files("dense" if dense else "here", layout_dir(profile, network, kind, level, replicate))
    weights = {"weights": get_spec(profile.backbone).weights,
               "digest": _pretrained_digest(profile.backbone, str(paths.torch_hub_dir(profile.path("data_root"))),
                                            bool(profile.download))}
    if network == "dense" or level == 0:
        return {"provenance": "pretrained", **weights}
    recipe = TicketRecipe.for_profile(profile)
    rule = oneshot_kind(kind)
    return {"provenance": "oneshot", **weights,
            "recipe": {"rule": rule, "level": level, "density": target_density(recipe, level),
                       "exclude": sorted(recipe.exclude),
                       "seed": recipe.random_seed + level if rule == "random" else None}}


def _files(provenance: str, directory) -> dict[str, Any]:
    """A ticket folder in our layout: the digest of its model's and its mask's tensors."""
    return {"provenance": provenance,
            "digest": digest.combine(digest.file_digest(directory / "model.pth"),
                                     digest.file_digest(directory / "mask.pth"))}


def _external_digest(backbone: str, pretrained_dir: str, level: int) -> str:
    where = paths.resolve(pretrained_dir)
    return _external_cached(backbone, str(where), level, digest.tree_stamp(where))


@functools.lru_cache(maxsize=64)
def _external_cached(backbone: str, where: str, level: int, stamp: tuple) -> str:
    ticket = read_ticket(where, arch=backbone, state=level)
    return digest.combine(digest.tensors_digest(ticket.net.state_dict()), digest.tensors_digest(ticket.mask))


@functools.lru_cache(maxsize=16)
def _pretrained_digest(backbone: str, root: str, download: bool) -> str:
    """The pretrained weights' tensors (once per process: a weights file never changes under a run)."""
    return digest.tensors_digest(pretrained_state(backbone, root=root, download=download))


def stale_network(config: dict[str, Any], artifacts: str) -> str | None:
    """Why a finished record's network is no longer the one its names load under `artifacts` (its
    tickets remade, or real tickets made where it pruned once), or None: current, or not checkable
    here (no fingerprint in the record, or its network is not on this machine)."""
    stored = config.get("network_fingerprint")
    if not isinstance(stored, dict):
        return None
    try:
        profile = _profile(config["profile"], config.get("backbone"), artifacts)
        now = network_fingerprint(profile, config["network"], config["kind"], config["level"],
                                  config.get("pretrained_dir"), config.get("replicate", 1))
    except (ReprolibError, KeyError, TypeError):
        return None
    if now == stored:
        return None
    return (f"its network ({config['network']} {config['kind']} L{config['level']}) has been remade since the run "
            f"(digest {str(stored.get('digest'))[:8]}, now {str(now.get('digest'))[:8]})")


@functools.lru_cache(maxsize=16)
def _profile(name: str, backbone: str | None, artifacts: str):
    profile = load_profile(name, artifacts=artifacts)
    return profile if not backbone or backbone == profile.backbone else dataclasses.replace(profile, backbone=backbone)
