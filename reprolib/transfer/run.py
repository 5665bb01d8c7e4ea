"""`run_transfer(cfg)`: one transfer run, from config to an atomically written record.

Steps: resolve the config against its profile and protocol -> hash -> return the record if
it exists -> load the target (few-shot subset, optional validation split carved from it)
-> load the backbone or ticket -> build the method (LP or a prompt) -> train -> evaluate
on the full test set (every split gathered one minibatch at a time: reprolib.transfer.inputs)
-> write `<hash>.npz` (learned prompt / head), `<hash>.scores.npz` (test and OOD logits:
reprolib.scores.saved) and then `<hash>.json`
(the JSON is the commit marker: a run is finished exactly when its JSON exists).

The reported number is the final epoch's test accuracy; with `select_best_on_val` it is the
test accuracy of the epoch that was best on a validation split carved from the (few-shot)
training subset. Test data never selects or builds anything.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reprolib import determinism, paths
from reprolib.config import load_profile
from reprolib.data import capped_warning, effective_shots, few_shot_indices, get_dataset
from reprolib.data.registry import info, names
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
from reprolib.transfer.feature_cache import store_for
from reprolib.transfer.method import MethodContext, TransferMethod
from reprolib.transfer.inputs import predict
from reprolib.transfer.ood_eval import ood_images, ood_logits, ood_partners
from reprolib.transfer.registry import build_method
from reprolib.transfer.registry import get as get_method
from reprolib.transfer.train import FitResult, FitSettings, Splits, fit


def resolve(cfg: TransferConfig) -> tuple[dict[str, Any], Any, Any]:
    """(the run's config, Profile, Protocol) with every None filled in: the config is what the run
    uses (hashed into its id) plus how the study names it (records.RECORD_ONLY_KEYS, not hashed)."""
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
    target = info(cfg.target)
    method = get_method(cfg.method)
    preset = protocol.to_dict()
    hashed = {
        # What the run uses (its identity): the data and its few-shot draw, the network as loaded,
        # the method with its own hyperparameters, the shared schedule, the evaluation, the seed.
        "target": cfg.target, "num_classes": target.num_classes, "n_shot": cfg.n_shot,
        "select_best_on_val": cfg.select_best_on_val,
        "val_fraction": cfg.val_fraction if cfg.select_best_on_val else None,
        "backbone": profile.backbone,
        "network_fingerprint": network_fingerprint(profile, cfg.network, cfg.kind, cfg.level, cfg.pretrained_dir,
                                                   cfg.replicate),
        "method": cfg.method, "label_map": cfg.label_map,
        "hparams": {name: preset[name] for name in method.hparams},
        "schedule": {name: preset[name] for name in SCHEDULE},
        "epochs": epochs, "batch_size": cfg.batch_size or protocol.batch_size_for(cfg.target),
        "test_batch_size": protocol.test_batch_size,
        "seed": protocol.seed if cfg.seed is None else cfg.seed, "device": device,
        "legacy_ece_batch": protocol.legacy_batch_for(cfg.method, cfg.target),
        "ood_partners": list(ood_partners(cfg.target, profile)), "ood_per_set": protocol.ood_per_set,
        # How the study names it (records.RECORD_ONLY_KEYS: shown, not hashed).
        "profile": profile.profile, "source": profile.source, "network": cfg.network, "kind": cfg.kind,
        "level": cfg.level, "pretrained_dir": cfg.pretrained_dir, "replicate": cfg.replicate, "protocol": preset,
    }
    if profile.compile and device.startswith("cuda"):   # compiled kernels round differently
        hashed["compile"] = True
    return hashed, profile, protocol


# The Protocol fields every method's loop reads (the per-method ones are MethodSpec.hparams).
SCHEDULE = ("milestones", "gamma", "eval_fraction")


def record_path(cfg: TransferConfig) -> Path:
    """Where this config's record lives (whether or not it exists yet)."""
    hashed, profile, _ = resolve(cfg)
    return _results_dir(cfg, profile) / f"{record_id(hashed)}.json"


def _results_dir(cfg: TransferConfig, profile) -> Path:
    return Path(cfg.results_path) if cfg.results_path else paths.runs_dir(profile.path("artifacts"))


def carve_validation(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train positions, val positions): per class ceil(fraction * n) held out when n >= 2."""
    generator = torch.Generator().manual_seed(seed + 7919)   # independent of the few-shot draw
    train_idx, val_idx = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = min(math.ceil(fraction * len(members) - 1e-9), len(members) - 1) if len(members) >= 2 else 0
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    val = torch.sort(torch.cat(val_idx)).values
    if len(val) == 0:
        raise ReprolibError("select_best_on_val needs at least 2 training images in some class; "
                            "valid choices: n_shot >= 2 or -1")
    return torch.sort(torch.cat(train_idx)).values, val


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
    """
    root, download = profile.path("data_root"), profile.download
    spec, backbone, target = get_method(cfg.method), get_spec(profile.backbone), info(cfg.target)
    train = get_dataset(cfg.target, "train", root=root, download=download,
                        size=spec.load_side(backbone, target, protocol, "train"))
    test = get_dataset(cfg.target, "test", root=root, download=download,
                       size=spec.load_side(backbone, target, protocol, "test"))
    shots = effective_shots(train.labels, cfg.n_shot, train.info.class_names)
    if cfg.n_shot != -1:
        train = train.subset(few_shot_indices(train.labels, cfg.n_shot, seed))
        warning = capped_warning(shots, cfg.target)
        if warning:
            print(warning, file=sys.stderr)   # one line; the record and the ledger keep the details
    val = None
    if cfg.select_best_on_val:
        train_pos, val_pos = carve_validation(train.labels, cfg.val_fraction, seed)
        train, val = train.subset(train_pos), train.subset(val_pos)
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
                         feature_store=store)


def fit_settings(cfg: TransferConfig, hashed: dict[str, Any]) -> FitSettings:
    progress = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    return FitSettings(epochs=hashed["epochs"], batch_size=hashed["batch_size"],
                       test_batch_size=hashed["test_batch_size"], seed=hashed["seed"],
                       device=hashed["device"], progress=progress, desc=f"{cfg.method} {cfg.target}",
                       eval_epochs=tuple(eval_schedule(hashed["schedule"]["eval_fraction"], hashed["epochs"])))


def run_scores(cfg: TransferConfig, profile, method: TransferMethod, test: tuple[torch.Tensor, torch.Tensor],
               info, hashed: dict[str, Any]) -> SavedScores:
    """What the run's metrics are computed from: `test` = (reported test logits, test labels),
    plus the trained model's logits on the profile's OOD images (reprolib.transfer.ood_eval)."""
    test_logits, test_labels = test
    images = ood_images(cfg.target, profile, info.image_size, info.channels, hashed["ood_per_set"])
    ood = ood_logits(lambda x: predict(method.forward, method.inputs(x), hashed["test_batch_size"]), images)
    return SavedScores(test_logits, test_labels.cpu(), ood)


def record_config(cfg: TransferConfig, hashed: dict[str, Any], ticket, data: TargetData, backbone) -> dict:
    """The record's config: the hashed settings plus what the run found (ticket, split, sizes)."""
    return {**hashed,
            "ticket": ticket.record_fields(),   # provenance included; none of it is hashed
            "split": data.train.split_note,
            "prompt_size": get_method(cfg.method).prompt_size(backbone, data.train.info),
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
                       ticket, method, data.splits(), fit_settings(cfg, hashed), started)


def finish_run(run: PreparedRun, result: FitResult) -> dict[str, Any]:
    """Score the trained method (calibration, OOD) and write `<id>.npz`, `<id>.scores.npz`, then `<id>.json`."""
    cfg, hashed, method = run.cfg, run.hashed, run.method
    scores = run_scores(cfg, run.profile, method, (result.test_logits, run.data.test.labels), run.data.test.info,
                        hashed)
    metrics = compute_metrics(scores, hashed)   # every registered metric (reprolib.scores.registry)
    label_map = method.label_map
    record = build_record(
        run.run_id, record_config(cfg, hashed, run.ticket, run.data, run.backbone), metrics,
        wall_time_s=time.perf_counter() - run.started, device=device_name(hashed["device"]),
        selection={"rule": "best_val" if cfg.select_best_on_val else "final_epoch",
                   "epoch": result.selected_epoch + 1},
        label_map=None if label_map is None else [int(s) for s in label_map.tolist()],
        curves=result.curves,
    )
    arrays = {k: v.numpy() for k, v in method.learned_state().items()}
    # .npz, .scores.npz, then the JSON (the commit marker)
    write_run_files(run.out_dir, run.run_id, record, arrays,
                    companions=((scores_path(run.out_dir, run.run_id), lambda f: write_scores(f, scores)),))
    return record


def run_transfer(cfg: TransferConfig, force: bool = False) -> dict[str, Any]:
    """Run (or skip) one transfer configuration and return its record."""
    record = None if force else existing_record(cfg)
    if record is not None:
        return record
    run = prepare_run(cfg)
    return finish_run(run, fit(run.method, run.splits, run.settings))
