"""TransferConfig: every parameter of one transfer run, typed and validated in one place.

Fields left as None take the profile's or the protocol's value; `resolve()` fills them in
and returns the dictionary that is hashed into the record's file name and stored in the
record, so two runs with the same resolved settings share one record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from reprolib.devices import DEVICES
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.transfer.labelmap import LABEL_MAPS
from reprolib.models.registry import names as backbone_names
from reprolib.protocols import names as protocol_names
from reprolib.sparsity.masks import KINDS as TICKET_KINDS
from reprolib.sparsity.network import NETWORKS
from reprolib.transfer import registry

METHODS = registry.names()                  # one source: the method registry
PROMPT_METHODS = registry.prompt_methods()

MAX_SEED = 2 ** 63     # torch.Generator.manual_seed takes a 64-bit seed; larger ones overflow
MAX_COUNT = 2 ** 31    # shots, levels, batch sizes, epochs: anything larger is a typo, not a setting

# Fields that do not change the numbers (where the record goes, progress bars): not hashed.
UNHASHED = ("results_path", "progress")


@dataclass
class TransferConfig:
    """One transfer run. `label_map` None = "ilm" for prompt methods; LP has none."""

    profile: str = "embedded"
    target: str = "digits"
    method: str = "vp"
    label_map: str | None = None
    network: str = "dense"
    kind: str = "imp"                      # ticket kind (network LT)
    level: int = 0                         # ticket level / RLT sparsity state S (network LT)
    pretrained_dir: str | None = None      # RLT-style ticket files; None = our tickets
    replicate: int = 1                     # ticket replicate of our tickets (docs/methods.md s.12)
    n_shot: int = -1                       # images per class; -1 = full training set
    seed: int | None = None                # None = the protocol's seed
    protocol: str | None = None            # None = the profile's protocol
    backbone: str | None = None            # None = the profile's backbone (a registry name)
    batch_size: int | None = None          # None = the protocol's batch for this target
    epochs: int | None = None              # None = the protocol's epochs
    device: str | None = None              # None = the profile's device (auto | cpu | cuda)
    results_path: str | None = None        # None = <profile artifacts>/runs
    select_best_on_val: bool = False       # best epoch on a val split carved from train
    val_fraction: float = 0.1              # share of each class held out when selecting
    progress: bool | None = None           # tqdm over epochs; None = only on a terminal

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """One-line errors for every bad value (names the value and the valid choices)."""
        for name in ("profile", "target", "method", "network", "kind"):
            check_type(name, getattr(self, name), str)
        self._validate_method()
        self._validate_network()
        self._validate_counts()
        if self.device is not None:
            check_choice("device", self.device, DEVICES)
        for name in ("protocol", "backbone", "pretrained_dir", "results_path"):
            if getattr(self, name) is not None:
                check_type(name, getattr(self, name), str)
        if self.protocol is not None:
            check_choice("protocol", self.protocol, protocol_names())
        if self.backbone is not None:
            check_choice("backbone", self.backbone, backbone_names())
        check_type("select_best_on_val", self.select_best_on_val, bool)
        check_type("val_fraction", self.val_fraction, float)
        if not 0.0 < self.val_fraction < 1.0:
            raise ReprolibError(f"val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.progress is not None:
            check_type("progress", self.progress, bool)

    def _validate_method(self) -> None:
        """The method exists; its label map is one of LABEL_MAPS (default ilm) or, for LP, none."""
        check_choice("method", self.method, METHODS)
        if not registry.get(self.method).needs_label_map:
            if self.label_map not in (None, "none"):
                raise ReprolibError(f"method {self.method!r} takes no label map, got {self.label_map!r}; "
                                    "valid choices: none")
            self.label_map = None
        elif self.label_map == "none":
            raise ReprolibError(f"method {self.method!r} needs a label map, got 'none'; "
                                f"valid choices: {', '.join(LABEL_MAPS)}")
        else:
            self.label_map = check_choice("label map", self.label_map or "ilm", LABEL_MAPS)

    def _validate_network(self) -> None:
        check_choice("network", self.network, NETWORKS)
        check_choice("ticket kind", self.kind, TICKET_KINDS)
        check_type("level", self.level, int)
        if not 0 <= self.level < MAX_COUNT:
            raise ReprolibError(f"level (sparsity state) must be >= 0 and < 2**31, got {self.level}")
        check_type("replicate", self.replicate, int)
        if not 1 <= self.replicate < MAX_COUNT:
            raise ReprolibError(f"replicate (ticket replicate) must be >= 1, got {self.replicate}")
        if self.network == "dense" and (self.level != 0 or self.kind != "imp"):
            raise ReprolibError(f"network 'dense' takes no ticket (got kind {self.kind!r} level {self.level}); "
                                "valid choices: --network LT for a ticket")

    def _validate_counts(self) -> None:
        """n_shot, seed, batch_size and epochs: ints in range (None = the protocol's)."""
        check_type("n_shot", self.n_shot, int)
        if self.n_shot == 0 or self.n_shot < -1 or self.n_shot >= MAX_COUNT:
            raise ReprolibError(f"n_shot must be -1 (all) or 1 .. 2**31-1, got {self.n_shot}")
        for name in ("seed", "batch_size", "epochs"):
            value = getattr(self, name)
            if value is not None:
                check_type(name, value, int)
        if self.seed is not None and not 0 <= self.seed < MAX_SEED:
            raise ReprolibError(f"seed must be 0 .. 2**63-1 (torch's generator seed), got {self.seed}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if value is not None and not 1 <= value < MAX_COUNT:
                raise ReprolibError(f"{name} must be 1 .. 2**31-1, got {value}")

    def replace(self, **changes: Any) -> TransferConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
