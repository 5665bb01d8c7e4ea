"""`run_transfer(cfg)`: one transfer run, from config to an atomically written record.

Steps: resolve the config against its profile and protocol -> hash -> return the record if
it exists -> load the target (few-shot subset, optional validation split carved from it)
-> load the backbone or ticket -> build the method (LP or a prompt) -> train -> evaluate
on the full test set (every split gathered one minibatch at a time: reprolib.transfer.inputs)
-> score its OOD sets (the OOD stage, in process: reprolib.transfer.ood_stage) -> write `<hash>.npz`
(learned prompt / head), `<hash>.scores.npz` (test logits: reprolib.scores.saved), one
`<hash>.ood-<set>.npz` per OOD set (reprolib.scores.ood_files) and then `<hash>.json`
(the JSON is the commit marker: a run is finished exactly when its JSON exists). For a finished
run, `run_transfer` completes the OOD stage instead: it scores only the OOD sets the profile
assigns now that the run has no file for, from its saved learned state (`restore_method`).

The reported number is the final epoch's test accuracy; with `select_best_on_val` it is the
test accuracy of the epoch that was best on a validation split carved from the (few-shot)
training subset. Test data never selects or builds anything.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolib import determinism, paths
from reprolib.config import load_profile
from reprolib.data import capped_warning, effective_shots
from reprolib.data.registry import info, names
from reprolib.determinism import kernel_facts
from reprolib.devices import device_name, resolve_device
from reprolib.errors import ReprolibError, check_choice
from reprolib.scores.registry import compute_metrics
from reprolib.models.registry import get_spec
from reprolib.protocols import eval_schedule, get_protocol
from reprolib.records import build_record, record_id, verified_record, write_run_files
from reprolib.scores.saved import SavedScores, scores_path, write_scores
from reprolib.sparsity.identity import network_fingerprint
from reprolib.sparsity.network import get_network
from reprolib.transfer.config import TransferConfig
from reprolib.transfer.description import data_description, draw, geometry, read_splits
from reprolib.transfer.feature_cache import store_for
from reprolib.transfer.method import MethodContext, TransferMethod
from reprolib.transfer.inputs import predict
from reprolib.transfer.ood_eval import OodSet, ood_sets
from reprolib.transfer.ood_stage import StageItems, complete, group_logits, is_complete, record_field, score_sets
from reprolib.transfer.ood_stage import writers as ood_writers
from reprolib.transfer.registry import build_method, method_hparams
from reprolib.transfer.registry import get as get_method
from reprolib.transfer.train import FitResult, FitSettings, Splits, fit


def resolve(cfg: TransferConfig) -> tuple[dict[str, Any], Any, Any]:
    """(the run's resolved description, Profile, Protocol) with every None filled in, assembled from
    the entries the run reads (reprolib.transfer.description). Its id hashes all of it but
    records.NEUTRAL_KEYS: how the study names the run, proven not to change a number."""
    cfg.validate()
    profile = load_profile(cfg.profile)
    if cfg.backbone is not None:   # the same study on another backbone (the hashed config names it)
        profile = dataclasses.replace(profile, backbone=cfg.backbone)
    check_choice("dataset", cfg.target, names())
    protocol = get_protocol(cfg.protocol or profile.protocol)
    epochs = cfg.epochs or protocol.epochs
    if cfg.epochs is not None:
        protocol = get_protocol(protocol.name, epochs=epochs)
    device = resolve_device(cfg.device or profile.device)
    target, method, backbone = info(cfg.target), get_method(cfg.method), get_spec(profile.backbone)
    preset = protocol.to_dict()
    seed = protocol.seed if cfg.seed is None else cfg.seed
    train, test = read_splits(cfg, profile, protocol)
    hashed = {
        # What makes the numbers (the id): the data as read and its few-shot draw, the geometry, the
        # network as loaded, the method with its own hyperparameters, the schedule, the evaluation,
        # the seed, the device and the CPU kernels (reprolib.determinism.kernel_facts).
        "target": cfg.target, "num_classes": target.num_classes, "n_shot": cfg.n_shot,
        "select_best_on_val": cfg.select_best_on_val,
        "val_fraction": cfg.val_fraction if cfg.select_best_on_val else None,
        "data": data_description(train, test, draw(train.labels, cfg, seed)),
        "backbone": profile.backbone, "geometry": geometry(method, backbone, target, protocol),
        "prompt_size": method.prompt_size(backbone, target),
        "network_fingerprint": network_fingerprint(profile, cfg.network, cfg.kind, cfg.level, cfg.pretrained_dir,
                                                   cfg.replicate),
        "method": cfg.method, "label_map": cfg.label_map, "hparams": method_hparams(method, protocol),
        "schedule": {name: preset[name] for name in SCHEDULE},
        "epochs": epochs, "batch_size": cfg.batch_size or protocol.batch_size_for(cfg.target),
        "test_batch_size": protocol.test_batch_size,
        "seed": seed, "device": device, "cpu_kernels": kernel_facts(device),
        "legacy_ece_batch": protocol.legacy_batch_for(cfg.method, cfg.target),
        # How the study names it (records.RECORD_ONLY_KEYS: shown, not hashed).
        "profile": profile.profile, "source": profile.source, "network": cfg.network, "kind": cfg.kind,
        "level": cfg.level, "pretrained_dir": cfg.pretrained_dir, "replicate": cfg.replicate, "protocol": preset,
    }
    if profile.compile and device.startswith("cuda"):   # compiled kernels round differently
        hashed["compile"] = True
    return hashed, profile, protocol


# The Protocol fields every method's loop reads (each method's own numbers: method_hparams).
SCHEDULE = ("milestones", "gamma", "eval_fraction")


def record_path(cfg: TransferConfig) -> Path:
    """Where this config's record lives (whether or not it exists yet)."""
    hashed, profile, _ = resolve(cfg)
    return _results_dir(cfg, profile) / f"{record_id(hashed)}.json"


def _results_dir(cfg: TransferConfig, profile) -> Path:
    return Path(cfg.results_path) if cfg.results_path else paths.runs_dir(profile.path("artifacts"))


@dataclass(frozen=True)
class TargetData:
    """The run's target splits (ImageSplits): few-shot train, full test, optional validation;
    `shots` is the few-shot draw's effective shots (fewshot.effective_shots; None for full data).
    The splits stay in their stored form (uint8 memory maps for paper sets): the loop gathers
    minibatches from them on the device."""

    train: Any
    test: Any
    val: Any | None
    shots: dict[str, Any] | None = None

    def splits(self) -> Splits:
        return Splits(train=self.train, test=self.test, val=self.val)


def load_target(cfg: TransferConfig, profile, seed: int, protocol) -> TargetData:
    """The target's splits: train (few-shot subset, minus a carved validation split), test, val.

    Each split is loaded at the side the method stores (MethodSpec.load_side): paper images
    are resized once from the original, never upsampled from the prompt-size copy (s.4).
    The draw and the carve are the ones the run's description digests (description.draw).
    """
    train, test = read_splits(cfg, profile, protocol)
    shots = effective_shots(train.labels, cfg.n_shot, train.info.class_names)
    if cfg.n_shot != -1:
        warning = capped_warning(shots, cfg.target)
        if warning:
            print(warning, file=sys.stderr)   # one line; the record and the ledger keep the details
    train_pos, val_pos = draw(train.labels, cfg, seed)
    val = None if val_pos is None else train.subset(val_pos)
    train = train if train_pos is None else train.subset(train_pos)
    return TargetData(train, test, val, shots)


def load_backbone(cfg: TransferConfig, profile, device: str):
    """(frozen Backbone on `device`, TicketInfo) of the run's dense network or ticket."""
    backbone, ticket = get_network(profile, network=cfg.network, kind=cfg.kind, level=cfg.level,
                                   pretrained_dir=cfg.pretrained_dir, replicate=cfg.replicate)
    backbone = backbone.to(device).eval().requires_grad_(False)
    if device.startswith("cuda"):
        backbone = backbone.to(memory_format=torch.channels_last)
        if profile.compile:   # the source-logit forward (prompts); LP's feature pass stays eager
            backbone.net = torch.compile(backbone.net)
    return backbone, ticket


def method_context(cfg: TransferConfig, hashed: dict[str, Any], protocol, backbone, target,
                   profile=None) -> MethodContext:
    """The method's context; with `profile`, LP features are shared through the profile's
    feature cache (`<artifacts>/features`, reprolib.transfer.feature_cache)."""
    store = None if profile is None else store_for(paths.features_dir(profile.path("artifacts")))
    return MethodContext(backbone=backbone, target=target, protocol=protocol, epochs=hashed["epochs"],
                         seed=hashed["seed"], device=hashed["device"], label_map=cfg.label_map,
                         feature_store=store, hparams=hashed["hparams"])


def fit_settings(cfg: TransferConfig, hashed: dict[str, Any]) -> FitSettings:
    progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    return FitSettings(epochs=hashed["epochs"], batch_size=hashed["batch_size"],
                       test_batch_size=hashed["test_batch_size"], seed=hashed["seed"],
                       device=hashed["device"], progress=progress, desc=f"{cfg.method} {cfg.target}",
                       eval_epochs=tuple(eval_schedule(hashed["schedule"]["eval_fraction"], hashed["epochs"])))


def record_config(cfg: TransferConfig, hashed: dict[str, Any], ticket, data: TargetData) -> dict:
    """The record's config: the resolved description plus what the run found (records.FOUND_KEYS:
    ticket, split note, sizes, effective shots)."""
    return {**hashed,
            "ticket": ticket.record_fields(),   # provenance included; none of it is hashed
            "split": data.train.split_note,
            "n_train": len(data.train), "n_test": len(data.test), "n_val": len(data.val) if data.val else 0,
            "effective_shots": data.shots}


@dataclass
class PreparedRun:
    """One run ready to train: everything `fit` needs and everything its record needs after.

    `run_transfer` = `prepare_run` -> `fit` -> `finish_run`; a grouped run
    (reprolib.transfer.grouped) prepares several on one backbone and trains them together.
    """

    cfg: TransferConfig
    hashed: dict[str, Any]
    profile: Any
    run_id: str
    out_dir: Path
    data: TargetData
    backbone: Any
    ticket: Any
    method: TransferMethod
    splits: Splits
    settings: FitSettings
    started: float
    protocol: Any


def existing_record(cfg: TransferConfig) -> dict[str, Any] | None:
    """The config's finished record, or None when it has to run (also when its network cannot be
    found: the run then fails with get_network's one line)."""
    try:
        path = record_path(cfg)
    except ReprolibError:
        return None
    return verified_record(path)


def prepare_run(cfg: TransferConfig, loaded: tuple[Any, Any] | None = None) -> PreparedRun:
    """Resolve, load the target and the backbone (or take `loaded` = (backbone, ticket), already
    on the device), build the method; the global RNG is seeded first, as for a single run."""
    hashed, profile, protocol = resolve(cfg)
    started = time.perf_counter()
    seed, device = hashed["seed"], hashed["device"]
    if device == "cpu":
        determinism.pin_threads()   # the protocol's thread count: the same numbers in any process
    torch.manual_seed(seed)
    data = load_target(cfg, profile, seed, protocol)
    backbone, ticket = loaded or load_backbone(cfg, profile, device)
    method = build_method(cfg.method, method_context(cfg, hashed, protocol, backbone, data.train.info, profile))
    return PreparedRun(cfg, hashed, profile, record_id(hashed), _results_dir(cfg, profile), data, backbone,
                       ticket, method, data.splits(), fit_settings(cfg, hashed), started, protocol)


def finish_run(run: PreparedRun, result: FitResult) -> dict[str, Any]:
    """Score the trained method on its OOD sets (the OOD stage, in process) and write `<id>.npz`,
    `<id>.scores.npz`, `<id>.ood-<set>.npz`, then `<id>.json` with every registered metric."""
    cfg, hashed, method = run.cfg, run.hashed, run.method
    sets = run_ood_sets(cfg, run.profile, run.protocol)
    ood = score_sets(method, sets, hashed["test_batch_size"])
    test = SavedScores(result.test_logits, run.data.test.labels.cpu())
    scores = SavedScores(test.test_logits, test.test_labels, group_logits(sets, ood))
    metrics = compute_metrics(scores, hashed)   # every registered metric (reprolib.scores.registry)
    label_map = method.label_map
    record = build_record(
        run.run_id, record_config(cfg, hashed, run.ticket, run.data), metrics,
        wall_time_s=time.perf_counter() - run.started, device=device_name(hashed["device"]),
        selection={"rule": "best_val" if cfg.select_best_on_val else "final_epoch",
                   "epoch": result.selected_epoch + 1},
        label_map=None if label_map is None else [int(s) for s in label_map.tolist()],
        curves=result.curves, ood_sets=record_field(sets),
    )
    arrays = {k: v.numpy() for k, v in method.learned_state().items()}
    # .npz, .scores.npz, .ood-<set>.npz, then the JSON (the commit marker)
    write_run_files(run.out_dir, run.run_id, record, arrays,
                    companions=((scores_path(run.out_dir, run.run_id), lambda f: write_scores(f, test)),
                                *ood_writers(run.out_dir, run.run_id, sets, ood)))
    return record


def run_ood_sets(cfg: TransferConfig, profile, protocol) -> tuple[OodSet, ...]:
    """The OOD sets the profile assigns to this run's target (reprolib.transfer.ood_eval.ood_sets)."""
    return ood_sets(cfg.target, profile, protocol.ood_per_set)


def restore_method(cfg: TransferConfig) -> TransferMethod:
    """The finished run's model, without training: its method rebuilt on its network (as the run
    loaded it) with the learned state of its `<id>.npz`; it predicts the run's logits to the bit."""
    hashed, profile, protocol = resolve(cfg)
    state = read_learned_state(paths.run_state_file(_results_dir(cfg, profile), record_id(hashed)))
    if hashed["device"] == "cpu":
        determinism.pin_threads()   # the run's thread count: its kernels, its bits
    backbone, _ = load_backbone(cfg, profile, hashed["device"])
    method = build_method(cfg.method, method_context(cfg, hashed, protocol, backbone, info(cfg.target), profile))
    method.load_learned_state(state)
    return method


def read_learned_state(path: Path) -> dict[str, torch.Tensor]:
    """A run's `<id>.npz` as CPU tensors; a missing or unreadable file is one line saying what to run."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: torch.from_numpy(npz[name]) for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ReprolibError(f"the learned state {path} cannot be read ({type(err).__name__}: {err}); delete the "
                            "run's record and run it again (python -m reprolib sweep)") from None


def complete_ood(cfg: TransferConfig, record: dict[str, Any]) -> StageItems:
    """The OOD stage of a finished run (reprolib.transfer.ood_stage.complete): its missing sets
    scored from its saved learned state, its record's OOD metrics brought in line."""
    hashed, profile, protocol = resolve(cfg)
    return complete(record, _results_dir(cfg, profile), run_ood_sets(cfg, profile, protocol),
                    lambda: restore_method(cfg), hashed["test_batch_size"])


def finished_record(cfg: TransferConfig) -> dict[str, Any] | None:
    """The config's finished record with its OOD stage completed, or None when it has to run."""
    record = existing_record(cfg)
    return None if record is None else complete_ood(cfg, record).record


def ood_stage_missing(cfg: TransferConfig) -> bool:
    """Whether the config's run is finished but its OOD stage is not (a set its profile assigns has
    no current file, or its record's OOD metrics are not from them); False for a run not finished."""
    record = existing_record(cfg)
    if record is None:
        return False
    _, profile, protocol = resolve(cfg)
    return not is_complete(_results_dir(cfg, profile), record, run_ood_sets(cfg, profile, protocol))


def run_transfer(cfg: TransferConfig, force: bool = False) -> dict[str, Any]:
    """Run one transfer configuration and return its record; a finished one only completes its
    OOD stage (`finished_record`)."""
    record = None if force else finished_record(cfg)
    if record is not None:
        return record
    run = prepare_run(cfg)
    return finish_run(run, fit(run.method, run.splits, run.settings))
