"""Lottery tickets by iterative magnitude pruning (IMP) with weight rewinding, and the
one-shot magnitude and random baselines at the same densities (docs/methods.md s.7), for
backbones whose spec says `tickets="imp"` (trained here; `reprolib.sparsity.tickets` picks).

- imp level 0: train the dense network with the upstream recipe, keeping its weights at
  iteration `rewind_iteration` (0 = init) in `imp/level_00/rewind.pth`.
- imp level L >= 1: prune `prune_fraction` (20%) of the remaining prunable weights of the
  TRAINED level L-1 network, globally by |w|; rewind the survivors (the whole state dict,
  BatchNorm statistics included) to the rewind point; retrain from iteration
  `rewind_iteration` to the end of a `retrain_epochs` schedule; keeps 0.8^L.
- magnitude level L (the standard one-shot LTH baseline): prune the trained dense model
  once, globally by |w|, to density 0.8^L; rewind and retrain exactly like IMP.
- random level L: the IMP level-L ticket's per-layer densities at seeded random positions
  (layer-wise random pruning); rewind and retrain exactly like IMP.
Baselines have no level 0 (it would be the dense model). Each level is written as
model.pth, mask.pth, then sparsity.json last; a level with sparsity.json is never redone,
so an interrupted run resumes at the first missing level.

Ticket replicates (Profile.replicates; docs/methods.md s.12): replicate r >= 2 is another IMP
run, under `tickets/replicate_RR/`, retrained with the upstream seed moved by
config.replicate_seed (another data order and augmentation; the random baseline's seed moves
the same way). It starts from replicate 1's dense model and rewind point, or, with
`tickets.replicate_upstream`, from a dense model of its own trained with the moved seed.
Replicates are independent, so `make_imp_tickets(..., workers=2)` makes them in parallel
processes (one torch thread each, as always: the numbers do not depend on it).
"""

from __future__ import annotations

import dataclasses
import json
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from reprolib.config import replicate_seed
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.models import get_backbone
from reprolib.progress import Progress
from reprolib.sparsity import masks as M
from reprolib.sparsity.recipe import TicketRecipe, target_density
from reprolib.sparsity.upstream import SourceData, UpstreamRecipe, evaluate, load_source_data, steps_per_epoch, train


class TicketMaker:
    """Makes (or finds) ticket levels of one profile; `made` lists what it computed."""

    def __init__(self, profile: Any, data: SourceData | None = None, progress: bool = True, replicate: int = 1):
        check_type("ticket replicate", replicate, int)
        if replicate < 1:
            raise ReprolibError(f"ticket replicate must be >= 1, got {replicate}")
        self.profile, self.replicate = profile, replicate
        upstream = UpstreamRecipe.for_profile(profile)
        self.upstream = dataclasses.replace(upstream, seed=replicate_seed(upstream.seed, replicate))
        self.recipe = TicketRecipe.for_profile(profile)
        self.own_dense = replicate == 1 or self.recipe.replicate_upstream   # else replicate 1's dense model
        self.artifacts = profile.path("artifacts")
        self._data = data
        self.progress = progress
        self.made: list[tuple[str, int]] = []

    # -- helpers -----------------------------------------------------------------------
    @property
    def data(self) -> SourceData:
        if self._data is None:
            self._data = load_source_data(self.profile)
        return self._data.subset(self.upstream)

    def _new_backbone(self):
        torch.manual_seed(self.upstream.seed)  # same init for every run of the same seed
        return get_backbone(self.profile.backbone, weights=None)

    def directory(self, kind: str, level: int) -> Path:
        """The folder of (kind, level) of this replicate (its dense model may be replicate 1's)."""
        if kind == "imp" and level == 0 and not self.own_dense:
            return M.ticket_dir(self.artifacts, "imp", 0)
        return M.ticket_dir(self.artifacts, kind, level, self.replicate)

    def _load(self, kind: str, level: int):
        backbone = self._new_backbone()
        directory = self.directory(kind, level)
        backbone.net.load_state_dict(M.load_tensors(directory / "model.pth"))
        return backbone, M.load_tensors(directory / "mask.pth")

    def level(self, kind: str, level: int) -> dict[str, Any]:
        """The sparsity.json of `kind` level `level`, making it (and its parents) if missing."""
        check_choice("ticket kind", kind, M.MADE_KINDS)
        check_type("ticket level", level, int)
        if level < 0 or (level == 0 and kind != "imp"):
            raise ReprolibError(f"{kind} ticket level must be >= {0 if kind == 'imp' else 1}, got {level}")
        if kind == "imp" and level == 0 and not self.own_dense:
            return TicketMaker(self.profile, self._data, self.progress).level("imp", 0)
        directory = self.directory(kind, level)
        if M.is_complete(directory):
            report = M.load_json(directory / "sparsity.json")
            self._check_same_recipe(report, directory)
            return {**report, "path": str(directory), "status": "existing"}
        if kind == "imp" and level == 0:
            return self._make_dense(directory)
        if kind == "imp":
            self.level("imp", level - 1)
            parent_backbone, parent_mask = self._load("imp", level - 1)
            mask = M.global_magnitude_prune(parent_backbone.net, parent_mask, self.recipe.prune_fraction)
            parent = self.directory("imp", level - 1)
        elif kind == "magnitude":
            self.level("imp", 0)
            dense, _ = self._load("imp", 0)
            full = M.full_mask(dense.net, self.recipe.exclude)
            mask = M.global_magnitude_prune(dense.net, full, 1.0 - target_density(self.recipe, level))
            parent = self.directory("imp", 0)
        else:
            self.level("imp", level)
            _, imp_mask = self._load("imp", level)
            mask = M.random_prune_like(imp_mask, seed=replicate_seed(self.recipe.random_seed + level, self.replicate))
            parent = self.directory("imp", level)
        return self._retrain(kind, level, mask, parent, directory)

    def _recipes(self) -> dict[str, Any]:
        # as stored in JSON (lists, not tuples), so a stored report compares equal
        recipes = {"upstream": self.upstream.as_dict(), "tickets": self.recipe.making_dict()}
        if self.replicate > 1:
            recipes["replicate"] = {"replicate": self.replicate, "own_dense": self.own_dense}
        return json.loads(json.dumps(recipes))

    def _check_same_recipe(self, report: dict[str, Any], directory: Path) -> None:
        """A stored level made with another recipe is stale: say so instead of mixing recipes."""
        stored, current = report.get("recipe", {}), self._recipes()
        for part in current:
            for key, value in current[part].items():
                if stored.get(part, {}).get(key) != value:
                    raise ReprolibError(f"{directory} was made with {part}.{key}={stored.get(part, {}).get(key)!r}, "
                                        f"the profile now says {value!r}; delete {self.artifacts / 'tickets'} "
                                        f"to remake the tickets, or restore the recipe")

    # -- the two kinds of training -----------------------------------------------------
    def _make_dense(self, directory: Path) -> dict[str, Any]:
        backbone = self._new_backbone()
        mask = M.full_mask(backbone.net, self.recipe.exclude)
        data, start = self.data, (time.time(), time.process_time())
        total = self.upstream.epochs * steps_per_epoch(len(data.train_images), self.upstream.batch_size)
        if self.recipe.rewind_iteration >= total:
            raise ReprolibError(f"tickets.rewind_iteration {self.recipe.rewind_iteration} must be below the "
                                f"{total} upstream training iterations")
        rewind = train(backbone, data.train_images, data.train_labels, self.upstream, mask=mask,
                       rewind_iteration=self.recipe.rewind_iteration, desc="imp level 0 (dense)",
                       progress=self.progress)
        M.save_tensors(directory / "rewind.pth", rewind)
        return self._save("imp", 0, backbone, mask, None, directory, start)

    def rewind(self, mask: M.Mask):
        """A backbone holding the rewind-point weights (whole state dict) times `mask`."""
        backbone = self._new_backbone()
        backbone.net.load_state_dict(M.load_tensors(self.directory("imp", 0) / "rewind.pth"))
        M.apply_mask(backbone.net, mask)
        return backbone

    def _retrain(self, kind: str, level: int, mask: M.Mask, parent: Path, directory: Path) -> dict[str, Any]:
        backbone = self.rewind(mask)
        data, start = self.data, (time.time(), time.process_time())
        train(backbone, data.train_images, data.train_labels, self.recipe.retrain_recipe(self.upstream),
              mask=mask, start_iteration=self.recipe.rewind_iteration, desc=f"{kind} level {level}",
              progress=self.progress)
        return self._save(kind, level, backbone, mask, parent, directory, start)

    def _save(self, kind: str, level: int, backbone, mask: M.Mask, parent: Path | None,
              directory: Path, start: tuple[float, float]) -> dict[str, Any]:
        data = self.data
        scores = evaluate(backbone, data.test_images, data.test_labels, self.upstream.eval_batch_size,
                          self.upstream.num_threads)
        overall, per_layer = M.density(mask)
        report = {
            "kind": kind, "level": level, "replicate": self.replicate, "backbone": self.profile.backbone,
            "parent": None if parent is None else str(parent.relative_to(self.artifacts)),
            "density": overall, "density_target": target_density(self.recipe, level),
            "density_per_layer": per_layer, "density_rlt": M.density_rlt(backbone.net, mask),
            "upstream_test_accuracy": scores["accuracy"], "upstream_test_loss": scores["loss"],
            "recipe": self._recipes(),
            # wall-clock, and the process's CPU time (one thread: what the level costs a core, whatever the load)
            "train_seconds": round(time.time() - start[0], 2),
            "train_cpu_seconds": round(time.process_time() - start[1], 2),
        }
        M.save_tensors(directory / "model.pth", backbone.net.state_dict())
        M.save_tensors(directory / "mask.pth", mask)
        report = M.save_report(directory, report)  # last: marks the level complete
        self.made.append((kind, level))
        return {**report, "path": str(directory), "status": "made"}


def make_imp_tickets(profile: Any, levels: list[int], kinds: list[str] | tuple[str, ...] = ("imp",),
                     data: SourceData | None = None, progress: bool = True, replicates: tuple[int, ...] = (1,),
                     workers: int = 1) -> list[dict[str, Any]]:
    """Make (or find) every requested (kind, level) of every ticket replicate by IMP; baselines
    skip level 0 (= dense).

    Many parameters because each is one independent choice of what to make and how.
    Returns one summary per ticket (its sparsity.json plus `path` and `status`: "made" or
    "existing"), replicate by replicate, in the order of `kinds`, levels ascending. With
    `workers` > 1 the replicates are made in that many processes (after the shared dense model).
    """
    for kind in kinds:
        check_choice("ticket kind", kind, M.MADE_KINDS)
    replicates = sorted(set(replicates))
    todo = [(kind, level) for kind in kinds for level in sorted(set(levels)) if kind == "imp" or level > 0]
    shared = not TicketRecipe.for_profile(profile).replicate_upstream   # replicates on replicate 1's dense model
    if workers > 1 and len(replicates) > 1:
        if shared:   # the shared dense model first, once
            TicketMaker(profile, data=data, progress=progress).level("imp", 0)
        meter = Progress(len(replicates), "ticket replicates", echo=progress)
        out: dict[int, list[dict[str, Any]]] = {}
        with ProcessPoolExecutor(max_workers=min(workers, len(replicates)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_make_replicate, profile, _own(todo, r, shared), r): r for r in replicates}
            for future in as_completed(futures):
                out[futures[future]] = future.result()
                meter.done(f"replicate {futures[future]}: {len(todo)} levels")
        return [summary for r in replicates for summary in out[r]]
    meter = Progress(sum(len(_own(todo, r, shared)) for r in replicates), "ticket levels", echo=progress)
    out_list = []
    for replicate in replicates:
        maker = TicketMaker(profile, data=data, progress=progress, replicate=replicate)
        for kind, level in _own(todo, replicate, shared):
            out_list.append(maker.level(kind, level))
            meter.done(f"{kind} level {level}{'' if replicate == 1 else f' replicate {replicate}'} "
                       f"{out_list[-1]['status']}")
    return out_list


def _own(todo: list[tuple[str, int]], replicate: int, shared: bool) -> list[tuple[str, int]]:
    """A replicate's own levels: replicate 1's dense model is listed once, under replicate 1."""
    return [(k, lv) for k, lv in todo if not (shared and replicate > 1 and (k, lv) == ("imp", 0))]


def _make_replicate(profile: Any, todo: list[tuple[str, int]], replicate: int) -> list[dict[str, Any]]:
    """One replicate's levels, in a worker process (no progress bars there)."""
    maker = TicketMaker(profile, progress=False, replicate=replicate)
    return [maker.level(kind, level) for kind, level in todo]

