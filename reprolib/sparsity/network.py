"""`get_network`: the backbone a transfer run uses, dense or a lottery ticket, plus its facts.

What a profile's backbone offers is its registry spec's `tickets`:
- "imp" (trained here; the embedded profiles): dense = IMP level 0; "LT" reads our layout
  `<artifacts>/tickets/<kind>/level_XX` (made by `python -m reprolib tickets`). A baseline
  kind at level 0 is the dense model.
- "oneshot" (pretrained torchvision weights; the paper profile): dense = those weights.
  Without `pretrained_dir`, "LT" prunes them here one-shot by global magnitude to
  0.8^level (kind "imp" or "magnitude"), or randomly with those per-layer densities (kind
  "random"), with NO retraining. What stays dense is the spec's stem and classifier unless
  the profile's `tickets.exclude` says otherwise (ViT: conv_proj and heads.head; every
  Linear and attention in-projection of the encoder is prunable, see masks.prunable_names): these are not IMP tickets, and TicketInfo.kind says
  "magnitude" / "random" so the results table cannot mistake them.
Where `tickets prune --imagenet DIR` made IMP / GMP levels on ImageNet (`tickets/imp/level_XX/
model.pth`), "LT" kind "imp" loads those instead of pruning once (provenance "here").
"LT" with `pretrained_dir` (any backbone) loads a ticket through
`reprolib.sparsity.load.load_ticket` (RLT / open_lth / our formats).
"LT" with kind "imported" loads a ticket made elsewhere and imported with `tickets import` /
`tickets fetch` (`pretrained_dir` = its name, or a folder in our layout); its `level` is only
its place in the profile's `tickets.imported` list, and the record places it at its density.

Provenance (TicketInfo.provenance, stored in every record, never hashed): "dense"; "here"
(made here by pruning and retraining: IMP, or the retrained magnitude / random baselines);
"oneshot" (pruned once, NOT retrained: not a ticket); "imported" (with its `source`);
"external" (a `pretrained_dir` of unknown origin). `upstream_accuracy` is the network's
measured upstream test accuracy (the source task's: Fashion-MNIST here, ImageNet top-1
after `tickets evaluate --imagenet`), None when not measured; `published_top1` is what the
authors of an imported checkpoint report, kept apart from anything measured.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from reprolib import paths
from reprolib.config import load_profile
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.models import from_network, get_backbone, get_spec
from reprolib.sparsity import masks as M
from reprolib.sparsity.load import load_ticket
from reprolib.sparsity.recipe import TicketRecipe, target_density

NETWORKS = ("dense", "LT")   # the public code's --network choices: the dense model or a ticket


@dataclass(frozen=True)
class TicketInfo:
    """What a transfer record stores about the network it used (density as a fraction)."""

    id: str
    kind: str            # dense | imp | magnitude | random
    level: int
    density: float       # kept fraction of the prunable weights
    density_rlt: float   # kept fraction of conv weights except the stem (RLT's convention)
    path: str | None
    provenance: str = "dense"            # dense | here | oneshot | imported | external (PROVENANCES)
    source: str | None = None            # where an imported / external network came from
    upstream_accuracy: float | None = None   # measured upstream test accuracy; None = not measured
    published_top1: float | None = None      # reported by an imported checkpoint's authors

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "level": self.level, "density": self.density,
                "density_rlt": self.density_rlt, "path": self.path, **self.provenance_fields()}

    def provenance_fields(self) -> dict[str, Any]:
        """What the network is; records store these beside the ticket (outside the hashed config)."""
        return {"provenance": self.provenance, "source": self.source, "upstream_accuracy": self.upstream_accuracy,
                "published_top1": self.published_top1}

    def record_fields(self) -> dict[str, Any]:
        """The record's `config.ticket`: identity and densities, then provenance."""
        return {"kind": self.kind, "level": self.level, "id": self.id, "density": self.density,
                "density_rlt": self.density_rlt, **self.provenance_fields()}


PROVENANCES = ("dense", "here", "oneshot", "imported", "external")


def _named_networks(profile: Any) -> list[tuple[str, str, int, str | None]]:
    """Every network the profile names, dense first (see grid_networks), before de-duplication."""
    networks = [("dense", "imp", 0, None)]
    networks += [("LT", "imp", level, None) for level in profile.levels if level > 0]
    networks += [("LT", kind, profile.baseline_level, None) for kind in profile.baselines]
    imported = TicketRecipe.for_profile(profile).imported
    networks += [("LT", "imported", place, name) for place, name in enumerate(imported, start=1)]
    return list(dict.fromkeys(networks))


def network_identity(profile: Any, network: str, kind: str, level: int, pretrained_dir: str | None) -> tuple:
    """What network these grid arguments load, as far as the weights and mask go: the dense
    model whatever the kind at level 0; a one-shot network by its pruning rule and level (a
    pretrained backbone's "imp" and "magnitude" levels are the same magnitude pruning until
    real tickets are made: `pruned_at_load`); otherwise the arguments themselves."""
    if network == "dense" or (level == 0 and kind != "imported"):
        return ("dense",)
    if pruned_at_load(profile, network, kind, level, pretrained_dir):
        return ("oneshot", oneshot_kind(kind), level)
    return (network, kind, level, pretrained_dir)


def grid_networks(profile: Any) -> list[tuple[str, str, int, str | None]]:
    """(network, kind, level, pretrained_dir) of every distinct network a profile's study uses, dense first.

    Dense, the IMP levels, each baseline kind at `baseline_level`, then the imported tickets
    (`tickets.imported`, in its order) as kind "imported", level = their place in that list
    (1, 2, ...), pretrained_dir = their name. Two names of the same network (`network_identity`:
    the paper profile's magnitude baseline at level 8 IS its one-shot level 8 while no real
    tickets exist) run once, under the first name (`network_aliases` lists the others). The
    sweep's grid and `tickets evaluate` read this.
    """
    seen: dict[tuple, tuple] = {}
    for entry in _named_networks(profile):
        seen.setdefault(network_identity(profile, *entry), entry)
    return list(seen.values())


def network_aliases(profile: Any) -> list[tuple[tuple, tuple]]:
    """(dropped entry, the entry it is the same network as) for every duplicate name in the grid."""
    first: dict[tuple, tuple] = {}
    aliases = []
    for entry in _named_networks(profile):
        kept = first.setdefault(network_identity(profile, *entry), entry)
        if kept != entry:
            aliases.append((entry, kept))
    return aliases


def get_network(profile: Any, network: str = "dense", kind: str = "imp", level: int = 0,
                pretrained_dir: str | None = None, replicate: int = 1):
    """(Backbone in eval mode on CPU, TicketInfo) for the profile's backbone; `replicate` picks
    the ticket replicate of our layout (docs/methods.md s.12; 1 elsewhere)."""
    check_choice("network", network, NETWORKS)
    check_choice("ticket kind", kind, M.KINDS)
    check_type("ticket level", level, int)
    if level < 0:
        raise ReprolibError(f"ticket level must be >= 0, got {level}")
    if kind == "imported":
        if network != "LT" or pretrained_dir is None:
            raise ReprolibError("ticket kind 'imported' needs network 'LT' and pretrained_dir = an imported "
                                "ticket's name (`python -m reprolib tickets import`) or its folder")
        return _imported(profile, level, pretrained_dir)
    if network == "LT" and pretrained_dir is not None:
        return _external(profile, kind, level, pretrained_dir)
    if in_our_layout(profile, network, kind, level):
        return _from_layout(profile, network, kind, level, replicate)
    return _oneshot(profile, network, kind, level)


def in_our_layout(profile: Any, network: str, kind: str, level: int) -> bool:
    """get_network's choice between a level of our ticket layout and the pretrained weights."""
    return get_spec(profile.backbone).tickets == "imp" or _made_on_imagenet(profile, network, kind, level)


def oneshot_kind(kind: str) -> str:
    """What a one-shot network of grid kind `kind` is: random pruning for "random", else magnitude."""
    return "random" if kind == "random" else "magnitude"


def pruned_at_load(profile: Any, network: str, kind: str, level: int, pretrained_dir: str | None = None) -> bool:
    """True when `get_network` gives these arguments the pretrained weights pruned once at load
    (a one-shot network, not a ticket): what a label must call them, whatever `kind` says."""
    return (network == "LT" and level > 0 and kind != "imported" and pretrained_dir is None
            and not in_our_layout(profile, network, kind, level))


@functools.lru_cache(maxsize=None)
def network_label(profile_name: str, backbone: str | None, network: str, kind: str, level: int,
                  pretrained_dir: str | None) -> str:
    """How a run's progress and failure lines name its network: "dense", "imported NAME",
    "imp L2" for a ticket made here, "one-shot magnitude L2" where `pruned_at_load` (the grid's
    levels of a pretrained backbone). Read once per sweep, not per run; a profile or backbone
    that does not load gets the plain kind label (a failure line must not fail)."""
    if network == "dense":
        return "dense"
    if kind == "imported":
        return f"imported {pretrained_dir}"
    try:
        profile = load_profile(profile_name)
        profile = dataclasses.replace(profile, backbone=backbone) if backbone else profile
        one_shot = pruned_at_load(profile, network, kind, level, pretrained_dir)
    except ReprolibError:
        one_shot = False
    if one_shot:
        return f"one-shot {oneshot_kind(kind)} L{level}"
    return f"{kind} L{level}"


def _made_on_imagenet(profile: Any, network: str, kind: str, level: int) -> bool:
    """A pretrained backbone's IMP level made here on ImageNet (`tickets prune --imagenet`) replaces
    the one-shot pruning at that level."""
    return network == "LT" and kind == "imp" and level > 0 and \
        (M.ticket_dir(profile.path("artifacts"), kind, level) / "model.pth").is_file()


def _from_layout(profile: Any, network: str, kind: str, level: int, replicate: int = 1):
    """A level of our ticket layout (IMP level 0 for dense), as `python -m reprolib tickets` made it."""
    directory = layout_dir(profile, network, kind, level, replicate)
    if network == "dense" or level == 0:
        kind, level = "imp", 0
    report = M.load_json(directory / "sparsity.json")
    backbone = get_backbone(profile.backbone, weights=directory / "model.pth")
    M.apply_mask(backbone.net, M.load_tensors(directory / "mask.pth"))  # guard: a mask is the truth
    is_dense = network == "dense" or level == 0
    copy = paths.replicate_of(directory)
    info = TicketInfo(id=f"{profile.profile}-{profile.backbone}-" + ("dense" if is_dense else f"{kind}-L{level:02d}")
                      + ("" if copy == 1 else f"-r{copy:02d}"),
                      kind="dense" if is_dense else kind, level=level, density=float(report["density"]),
                      density_rlt=float(report["density_rlt"]), path=str(directory),
                      provenance="dense" if is_dense else "here",
                      upstream_accuracy=_measured(report))
    return backbone.eval(), info


def _external(profile: Any, kind: str, level: int, pretrained_dir: str):
    """A ticket in any format `load_ticket` reads, at state `level` of `pretrained_dir`."""
    name = profile.backbone
    net, mask = load_ticket(pretrained_dir, name, level)
    overall, _ = M.density(mask)
    info = TicketInfo(id=f"{name}-{kind}-L{level:02d}-external", kind=kind, level=level, density=overall,
                      density_rlt=_density_rlt(name, net, mask), path=str(pretrained_dir),
                      provenance="external", source=str(pretrained_dir))
    return from_network(name, net).eval(), info


def _imported(profile: Any, level: int, pretrained_dir: str):
    """An imported ticket (`tickets import` / `fetch`): by name under the profile's artifacts, or a folder."""
    name = profile.backbone
    directory = imported_dir(profile, pretrained_dir)
    report = M.load_json(directory / "sparsity.json")
    net, mask = load_ticket(directory, name)
    overall, _ = M.density(mask)
    info = TicketInfo(id=f"{name}-imported-{report.get('name', directory.name)}", kind="imported", level=level,
                      density=overall, density_rlt=_density_rlt(name, net, mask), path=str(directory),
                      provenance="imported", source=report.get("source"), upstream_accuracy=_measured(report),
                      published_top1=report.get("published_top1"))
    return from_network(name, net).eval(), info


def imported_dir(profile: Any, pretrained_dir: str):
    """The folder of imported ticket `pretrained_dir`: by name under the profile's artifacts, or a folder."""
    try:
        directory = paths.imported_ticket_dir(profile.path("artifacts"), pretrained_dir)
    except ReprolibError:   # not a bare name: a folder
        directory = paths.resolve(pretrained_dir)
    if not M.is_complete(directory):
        directory = paths.resolve(pretrained_dir)
    if not M.is_complete(directory):
        raise ReprolibError(f"no imported ticket {pretrained_dir!r} (looked in {paths.imported_ticket_dir(profile.path('artifacts'), 'NAME').parent} "
                            f"and at {directory}); import it with `python -m reprolib tickets import FILE --name NAME "
                            f"--profile {profile.profile}`")
    return directory


def layout_dir(profile: Any, network: str, kind: str, level: int, replicate: int = 1):
    """The complete folder of a level of our ticket layout (IMP level 0 for dense) of ticket
    replicate `replicate` (its dense model: replicate 1's unless tickets.replicate_upstream);
    missing = one line."""
    if network == "dense" or level == 0:
        kind, level = "imp", 0
        replicate = replicate if TicketRecipe.for_profile(profile).replicate_upstream else 1
    directory = M.ticket_dir(profile.path("artifacts"), kind, level, replicate)
    which = "" if replicate == 1 else f" --replicates {replicate}"
    remake = f"`python -m reprolib tickets --profile {profile.profile} --levels 0-{level} --kinds {kind}{which}`"
    _refuse_foreign_files(directory, f"delete {directory} and remake it with {remake}")
    if not M.is_complete(directory):
        what = "dense upstream model" if level == 0 else f"{kind} ticket level {level}"
        raise ReprolibError(f"no {what} at {directory}; make it with {remake}")
    return directory


def _refuse_foreign_files(directory, remedy: str) -> None:
    """A made level whose files no longer match its report (another size): a file that is not
    weights (a pickle of anything else, a foreign file) is named as such, not as a missing level."""
    if (directory / "sparsity.json").is_file() and M.missing_files(directory):
        for file in sorted(directory.glob("*.pth")):
            M.load_tensors(file, remedy)


def _measured(report: dict[str, Any]) -> float | None:
    """The upstream test accuracy a ticket report holds when it was measured (None otherwise)."""
    value = report.get("upstream_test_accuracy")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def dense_upstream(profile: Any) -> float | None:
    """The dense network's measured upstream accuracy (IMP level 0's report), None when not measured."""
    report = M.ticket_dir(profile.path("artifacts"), "imp", 0) / "sparsity.json"
    return _measured(M.load_json(report)) if report.is_file() else None


def _oneshot(profile: Any, network: str, kind: str, level: int):
    """The pretrained weights, pruned once at load time for "LT" (not retrained)."""
    name = profile.backbone
    root = paths.torch_hub_dir(profile.path("data_root"))
    backbone = get_backbone(name, weights="default", root=root, download=profile.download)
    if network == "dense" or level == 0:
        return backbone, TicketInfo(id=f"{name}-{profile.source}-dense", kind="dense", level=0, density=1.0,
                                    density_rlt=1.0, path=None, upstream_accuracy=dense_upstream(profile))
    recipe = TicketRecipe.for_profile(profile)
    full = M.full_mask(backbone.net, recipe.exclude)
    mask = M.global_magnitude_prune(backbone.net, full, 1.0 - target_density(recipe, level))
    pruned_kind = oneshot_kind(kind)
    if pruned_kind == "random":
        mask = M.random_prune_like(mask, seed=recipe.random_seed + level)
    M.apply_mask(backbone.net, mask)
    overall, _ = M.density(mask)
    report = M.ticket_dir(profile.path("artifacts"), pruned_kind, level) / "sparsity.json"
    info = TicketInfo(id=f"{name}-{profile.source}-{pruned_kind}-oneshot-L{level:02d}", kind=pruned_kind, level=level,
                      density=overall, density_rlt=_density_rlt(name, backbone.net, mask), path=None,
                      provenance="oneshot", upstream_accuracy=_measured(M.load_json(report)) if report.is_file() else None)
    return backbone.eval(), info


def _density_rlt(name: str, net, mask) -> float:
    """RLT's density with the backbone's own stem and head (see masks.density_rlt; ViT: the encoder)."""
    stem, classifier = get_spec(name).prune_exclude
    return M.density_rlt(net, mask, stem=stem, classifier=classifier)
