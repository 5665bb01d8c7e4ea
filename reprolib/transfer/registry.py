"""The transfer methods by name: how to build each and the facts the rest of reprolib reads.

`names()` lists them (lp, vp, smm, narrow, medium, full; TransferConfig's choices come from
here), `get(name)` gives a `MethodSpec`, `build_method(name, ctx)` the `TransferMethod`.
A spec owns its capabilities as separate fields: whether it is an input prompt, whether it
uses a label map, whether its runs train grouped on one backbone pass, whether its features
are shared between runs, its cost formula (cost.py asks it), the backbone families it
applies to, and its arms (the method/label-map combinations figures and claims show, with
display name, colour, order and role). Code asks these fields; it never compares names.

Adding a method is one module and one entry: a new prompt is its `nn.Module` and one
`PromptKind` in prompts/kinds.py (this registry makes its `MethodSpec` from the kind); another
kind of method is its `TransferMethod` and one `MethodSpec` here. The tests parametrise over
every entry (tests/test_transfer.py, tests/test_registries.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reprolib.data.registry import DatasetInfo
from reprolib.errors import ReprolibError, check_choice
from reprolib.transfer.labelmap import LABEL_MAPS, get_label_map
from reprolib.protocols import Hyperparameters, Protocol
from reprolib.transfer.linear_probe import LinearProbe
from reprolib.transfer.method import MethodContext, TransferMethod
from reprolib.prompts.kinds import Arm, PromptKind, get_kind
from reprolib.prompts.kinds import names as prompt_kinds
from reprolib.transfer.prompting import PromptMethod, load_side, stored_size

ROLES = ("probe", "prompt")   # MethodSpec.role: the two methods the paper's claims compare (LP, VP)


def feature_pass_cost(label_map: str | None, n_train: int, n_test: int, epochs: int, n_ood: int,
                      eval_passes: int | None) -> tuple[int, int]:
    """(forward, forward+backward) images of a run that trains on features read once: one
    forward pass over train, test and OOD images, no backward pass through the backbone.

    Many parameters because each is one independent count of the formula (cost.run_cost's)."""
    return n_train + n_test + n_ood, 0


def prompt_cost(label_map: str | None, n_train: int, n_test: int, epochs: int, n_ood: int,
                eval_passes: int | None) -> tuple[int, int]:
    """(forward, forward+backward) images of an input-prompt run: `eval_passes` test passes (None:
    one per epoch), the label map's mapping passes, the OOD images; every epoch's training
    images forward and backward through the backbone. The mapping passes are the label map
    entry's (`LabelMapKind.mapping_passes`: ILM one per epoch, FLM and FLM-grey one, RLM none).

    Many parameters because each is one independent count of the formula (cost.run_cost's)."""
    passes = get_label_map(label_map).mapping_passes(epochs) if label_map else 0
    tests = epochs if eval_passes is None else eval_passes
    return tests * n_test + passes * n_train + n_ood, epochs * n_train


@dataclass(frozen=True)
class MethodSpec:
    """One transfer method: its builder and the facts about it that other modules need."""

    name: str
    build: Callable[[MethodContext], TransferMethod]
    input_prompt: bool                                     # learns a prompt on the backbone's input
    needs_label_map: bool                                  # maps K of S source logits
    groupable: bool                                        # runs train together, one backbone pass (grouped.py)
    shared_features: bool                                  # trains on cached features shared by runs
    cost: Callable[..., tuple[int, int]]                   # cost.run_cost's formula: (fwd, fwdbwd) images
    # Side at which the method stores target images for its prompt (recorded as
    # config.prompt_size); None when no prompt places the image (LP).
    prompt_size: Callable[[object, DatasetInfo], int | None]
    summary: str
    # Side at which a run loads the target's split (backbone, target, protocol, split) -> px:
    # the original image resized once to what the method stores (docs/methods.md s.4).
    # `backbone` only needs `input_size` (a Backbone or a models.registry BackboneSpec).
    load_side: Callable[[object, DatasetInfo, Protocol, str], int] = lambda backbone, target, protocol, split: (
        backbone.input_size)
    families: tuple[str, ...] | None = None                # backbone families it applies to; None: all
    arms: tuple[Arm, ...] = field(default=())              # display order within the method
    role: str | None = None                                # one of ROLES: what the claims call LP / VP
    # The method's own numbers (learning rates, augmentation), per preset where they differ:
    # `method_hparams` reads them, for the run's identity and for the method itself, so a new
    # number of one method changes no other method's run id. The schedule every method shares
    # (epochs, batches, milestones, gamma, seed: protocols.Protocol) is hashed apart.
    hparams: Hyperparameters = Hyperparameters({})

    def applies_to(self, family: str) -> bool:
        """Whether this method runs on a backbone of `family`."""
        return self.families is None or family in self.families


def _prompt(kind: PromptKind) -> MethodSpec:
    """The transfer method of a prompt kind: a `PromptMethod` of that kind with a label map, its
    facts, numbers (`PromptKind.hparams`) and arms read from the kind's entry (prompts/kinds.py)."""
    for arm in kind.arms:
        if arm.method != kind.name or arm.label_map is None:
            raise ReprolibError(f"prompt kind {kind.name!r}: arm {arm.name!r} must be '{kind.name}/<label map>'")
        get_label_map(arm.label_map)
    name = kind.name
    return MethodSpec(name=name, build=lambda ctx: PromptMethod(ctx, name), input_prompt=True, needs_label_map=True,
                      groupable=True, shared_features=False, cost=prompt_cost,
                      prompt_size=lambda backbone, target: stored_size(name, backbone, target), summary=kind.summary,
                      load_side=lambda backbone, target, protocol, split: load_side(
                          name, backbone, target, method_hparams(get(name), protocol), split),
                      arms=kind.arms, role=kind.role, hparams=kind.hparams)


_SPECS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    # LP: the original image resized once to the backbone input (the default load_side).
    MethodSpec(name="lp", build=LinearProbe, input_prompt=False, needs_label_map=False, groupable=False,
               shared_features=True, cost=feature_pass_cost, prompt_size=lambda backbone, target: None,
               summary="linear probe: a new head on cached penultimate features",
               arms=(Arm("lp", None, "LP", "#1f77b4"),), role="probe",
               # Adam on the head: lr 0.01 (RLT, SMM and the CPU presets), 0.1 in ILM-VP's preset.
               hparams=Hyperparameters({"lp_lr": 0.01}, {"ilm": {"lp_lr": 0.1}})),
    # Every prompt kind is a method: one entry in prompts/kinds.py (`_prompt` reads it).
    *(_prompt(get_kind(kind)) for kind in prompt_kinds()),
)}


def names() -> tuple[str, ...]:
    return tuple(_SPECS)


def prompt_methods() -> tuple[str, ...]:
    """The methods that learn a prompt and need a label map."""
    return tuple(name for name, spec in _SPECS.items() if spec.needs_label_map)


def get(name: str) -> MethodSpec:
    return _SPECS[check_choice("method", name, names())]


def arms() -> tuple[Arm, ...]:
    """Every registered arm in display order (methods in registry order, then each method's arms)."""
    return tuple(arm for spec in _SPECS.values() for arm in spec.arms)


def method_of_arm(arm: str) -> MethodSpec | None:
    """The spec of the method an arm name belongs to ('vp/flm_grey' -> vp); None for no method."""
    method, _, _ = str(arm).partition("/")
    return _SPECS.get(method)


def has_role(arm: str) -> bool:
    """Whether `arm` ('lp', 'vp/flm', ...) belongs to a method the paper's claims compare (LP, VP)."""
    spec = method_of_arm(arm)
    return spec is not None and spec.role is not None


def role_method(role: str) -> MethodSpec:
    """The method that plays `role` (one of ROLES) in the claims: 'probe' -> lp, 'prompt' -> vp."""
    check_choice("method role", role, ROLES)
    return next(spec for spec in _SPECS.values() if spec.role == role)


def method_hparams(spec: MethodSpec, protocol: Protocol) -> dict[str, Any]:
    """The method's own numbers under `protocol`, {name: value}: what a run's identity hashes
    (transfer.run.resolve) and what the method trains with (`MethodContext.hparams`)."""
    return spec.hparams.for_protocol(protocol)


def build_method(name: str, ctx: MethodContext) -> TransferMethod:
    """The method `name` built from `ctx`, with its numbers under ctx.protocol (`method_hparams`,
    unless ctx carries them); a label map is checked against the method's needs."""
    spec = get(name)
    if ctx.hparams is None:
        ctx = dataclasses.replace(ctx, hparams=method_hparams(spec, ctx.protocol))
    if spec.needs_label_map and ctx.label_map is None:
        raise ReprolibError(f"method {name!r} needs a label map; valid choices: {', '.join(LABEL_MAPS)}")
    if not spec.needs_label_map and ctx.label_map is not None:
        raise ReprolibError(f"method {name!r} takes no label map, got {ctx.label_map!r}; valid choices: none")
    family = getattr(ctx.backbone, "family", None)
    if family is not None and not spec.applies_to(family):
        raise ReprolibError(f"method {name!r} does not apply to backbone family {family!r}; "
                            f"valid choices: {', '.join(spec.families or ())}")
    return spec.build(ctx)
