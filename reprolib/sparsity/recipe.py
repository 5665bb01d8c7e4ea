"""TicketRecipe: how tickets are made (the profile's `tickets:` dict), and the target density.

Shared by IMP (`reprolib.sparsity.imp`), the one-shot tickets of pretrained backbones
(`reprolib.sparsity.oneshot`) and `get_network`, which prunes those at load time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated, Any

from pydantic import Field

from reprolib.config import NonNegative, Seed, schema, validated
from reprolib.models.registry import get_spec
from reprolib.sparsity.masks import DEFAULT_EXCLUDE
from reprolib.sparsity.upstream import UpstreamRecipe


@schema("tickets recipe key", "tickets.")
class TicketRecipe:
    """How tickets are made: these defaults, then the profile's `tickets:` dict on top."""

    prune_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2   # of the remaining weights, per IMP level
    rewind_iteration: NonNegative = 200   # level-0 iteration the survivors rewind to (0 = init)
    retrain_epochs: Annotated[int, Field(ge=-1)] = -1   # epochs of the retraining schedule (-1 = upstream epochs)
    # never pruned; a profile without `exclude` gets its backbone's stem and head (BackboneSpec.prune_exclude)
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    random_seed: Seed = 0               # random baseline at level L uses random_seed + L
    # Tickets made elsewhere that the sweep runs too: name -> source. The source is a local
    # checkpoint file or folder (relative to the workbook home; `tickets` imports it), an
    # address (fetched), or "" (already imported, or a curated name `tickets fetch` knows).
    # Not part of how tickets are MADE, so making_dict() leaves it out (stored IMP reports stay valid).
    imported: dict[str, str] = field(default_factory=dict)   # names -> sources (str -> str)
    # How `tickets prune --imagenet DIR` makes tickets on ImageNet (ImageNetRecipe fields;
    # reprolib.sparsity.imagenet_prune). Stored in those tickets' own reports, not in making_dict().
    imagenet: dict[str, Any] = field(default_factory=dict)
    # Ticket replicates >= 2 (Profile.replicates): False = IMP from replicate 1's dense model with
    # other retraining seeds; True = each replicate also trains its own dense model (another
    # upstream seed). Recorded in the replicates' own reports, not in making_dict() (replicate 1
    # is made the same way either way, so its stored reports stay valid).
    replicate_upstream: bool = False

    @classmethod
    def for_profile(cls, profile: Any) -> "TicketRecipe":
        """The dataclass defaults with the profile's `tickets:` values applied, validated.

        Without an `exclude` key, the weights left dense are the profile backbone's stem and
        classifier (`BackboneSpec.prune_exclude`: conv1/fc for ResNets, conv_proj/heads.head for ViTs).
        """
        values = dict(getattr(profile, "tickets", {}) or {})
        if "exclude" not in values and getattr(profile, "backbone", None) is not None:
            values["exclude"] = list(get_spec(profile.backbone).prune_exclude)
        return validated(TicketRecipe, values, "tickets")

    def making_dict(self) -> dict[str, Any]:
        """The fields that decide how tickets are made (stored in each made ticket's report)."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("imported", "imagenet", "replicate_upstream")}

    def retrain_recipe(self, upstream: UpstreamRecipe) -> UpstreamRecipe:
        """The upstream recipe with the retraining schedule's epochs."""
        epochs = upstream.epochs if self.retrain_epochs < 0 else self.retrain_epochs
        return dataclasses.replace(upstream, epochs=epochs)


def target_density(recipe: TicketRecipe, level: int) -> float:
    """Kept fraction of the prunable weights at `level`: (1 - prune_fraction) ** level."""
    return (1.0 - recipe.prune_fraction) ** level
