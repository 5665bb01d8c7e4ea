"""TransferConfig: every parameter of one transfer run, typed and validated in one place.

Fields left as None take the profile's or the protocol's value; `resolve()` fills them in
and returns the dictionary that is hashed into the record's file name and stored in the
record, so two runs with the same resolved settings share one record.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import Field

from reprolib.config import Count, NonNegative, Seed, Shots, choice_of, schema
from reprolib.devices import DEVICES
from reprolib.errors import ReprolibError, check_choice
from reprolib.transfer.labelmap import LABEL_MAPS, default_label_map
from reprolib.models.registry import names as backbone_names
from reprolib.protocols import names as protocol_names
from reprolib.sparsity.masks import KINDS as TICKET_KINDS
from reprolib.sparsity.network import NETWORKS
from reprolib.transfer import registry

METHODS = registry.names()                  # one source: the method registry
PROMPT_METHODS = registry.prompt_methods()

# Fields that do not change the numbers (where the record goes, progress bars): not hashed.
UNHASHED = ("results_path", "progress")


@schema("transfer option", "")
class TransferConfig:
    """One transfer run. `label_map` None = "ilm" for prompt methods; LP has none.

    Each field is checked by its schema (types, ranges, choices: one line); `validate` adds what
    no single field says (a method's label map, a dense network's level)."""

    profile: str = "embedded"
    target: str = "digits"
    method: Annotated[str, choice_of("method", lambda: METHODS)] = "vp"
    label_map: str | None = None
    network: Annotated[str, choice_of("network", lambda: NETWORKS)] = "dense"
    kind: Annotated[str, choice_of("ticket kind", lambda: TICKET_KINDS)] = "imp"   # ticket kind (network LT)
    level: NonNegative = 0                 # ticket level / RLT sparsity state S (network LT)
    pretrained_dir: str | None = None      # RLT-style ticket files; None = our tickets
    replicate: Count = 1                   # ticket replicate of our tickets (docs/methods.md s.12)
    n_shot: Shots = -1                     # images per class; -1 = full training set
    seed: Seed | None = None               # None = the protocol's seed
    protocol: Annotated[str, choice_of("protocol", lambda: protocol_names())] | None = None  # None = the profile's
    backbone: Annotated[str, choice_of("backbone", lambda: backbone_names())] | None = None  # None = the profile's
    batch_size: Count | None = None        # None = the protocol's batch for this target
    epochs: Count | None = None            # None = the protocol's epochs
    device: Annotated[str, choice_of("device", lambda: DEVICES)] | None = None   # None = the profile's (auto | cpu | cuda)
    results_path: str | None = None        # None = <profile artifacts>/runs
    select_best_on_val: bool = False       # best epoch on a val split carved from train
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1   # share of each class held out when selecting
    progress: bool | None = None           # tqdm over epochs; None = only on a terminal

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """What no single field says, in one line naming the value and the valid choices."""
        self._validate_method()
        if self.network == "dense" and (self.level != 0 or self.kind != "imp"):
            raise ReprolibError(f"network 'dense' takes no ticket (got kind {self.kind!r} level {self.level}); "
                                "valid choices: --network LT for a ticket")
        if self.kind == "imported" and not self.pretrained_dir:
            raise ReprolibError("ticket kind 'imported' needs the ticket's name or folder; valid: --pretrained_dir NAME "
                                "(a ticket imported with `python -m reprolib tickets import FILE --name NAME`)")

    def _validate_method(self) -> None:
        """The method's label map is one of LABEL_MAPS (default ilm) or, for LP, none."""
        if not registry.get(self.method).needs_label_map:
            if self.label_map not in (None, "none"):
                raise ReprolibError(f"method {self.method!r} takes no label map, got {self.label_map!r}; "
                                    "valid choices: none")
            self.label_map = None
        elif self.label_map == "none":
            raise ReprolibError(f"method {self.method!r} needs a label map, got 'none'; "
                                f"valid choices: {', '.join(LABEL_MAPS)}")
        else:
            self.label_map = check_choice("label map", self.label_map or default_label_map(), LABEL_MAPS)

    def replace(self, **changes: Any) -> TransferConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
