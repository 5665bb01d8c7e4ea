"""`run_transfer(cfg)`: one transfer run, from config to an atomically written record.

Steps: resolve the config against its profile and protocol -> hash -> return the record if
it exists -> load the target (few-shot subset, optional validation split carved from it)
-> load the backbone or ticket -> build the method (LP or a prompt) -> train -> evaluate
on the full test set -> write `<hash>.npz` (learned prompt / head) and then `<hash>.json`
(the JSON is the commit marker: a run is finished exactly when its JSON exists).

The reported number is the final epoch's test accuracy; with `select_best_on_val` it is the
test accuracy of the epoch that was best on a validation split carved from the (few-shot)
training subset. Test data never selects or builds anything.
"""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path
from typing import Any

import torch

from reprolib.devices import device_name
from reprolib.errors import ReprolibError
from reprolib.records import (config_hash, read_record, record_exists, versions,
                              write_json_atomic, write_npz_atomic)
from reprolib.transfer.config import TransferConfig


def resolve(cfg: TransferConfig) -> tuple[dict[str, Any], Any, Any]:
    """(hashed config dict, Profile, Protocol) with every None filled in."""
    from reprolib.config import load_profile
    from reprolib.devices import resolve_device
    from reprolib.data.registry import info, names
    from reprolib.errors import check_choice
    from reprolib.protocols import get_protocol

    cfg.validate()
    profile = load_profile(cfg.profile)
    check_choice("dataset", cfg.target, names())
    protocol = get_protocol(cfg.protocol or profile.protocol)
    epochs = cfg.epochs or protocol.epochs
    if cfg.epochs is not None:
        protocol = get_protocol(protocol.name, epochs=epochs)
    device = resolve_device(cfg.device or profile.device)
    target = info(cfg.target)
    hashed = {
        "profile": profile.profile, "backbone": profile.backbone, "source": profile.source,
        "target": cfg.target, "method": cfg.method, "label_map": cfg.label_map,
        "network": cfg.network, "kind": cfg.kind, "level": cfg.level,
        "pretrained_dir": cfg.pretrained_dir, "n_shot": cfg.n_shot,
        "seed": protocol.seed if cfg.seed is None else cfg.seed,
        "protocol": protocol.to_dict(), "epochs": epochs,
        "batch_size": cfg.batch_size or protocol.batch_size_for(cfg.target),
        "test_batch_size": protocol.test_batch_size, "device": device,
        "select_best_on_val": cfg.select_best_on_val,
        "val_fraction": cfg.val_fraction if cfg.select_best_on_val else None,
        "num_classes": target.num_classes,
    }
    return hashed, profile, protocol


def record_path(cfg: TransferConfig) -> Path:
    """Where this config's record lives (whether or not it exists yet)."""
    hashed, profile, _ = resolve(cfg)
    return _results_dir(cfg, profile) / f"{config_hash(hashed)}.json"


def _results_dir(cfg: TransferConfig, profile) -> Path:
    return Path(cfg.results_path) if cfg.results_path else profile.path("artifacts") / "runs"


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


def load_target(cfg: TransferConfig, profile, seed: int):
    """(train split, test split, val split or None) as ImageSplits."""
    from reprolib.data import few_shot_indices, get_dataset

    root, download = profile.path("data_root"), profile.download
    train = get_dataset(cfg.target, "train", root=root, download=download)
    test = get_dataset(cfg.target, "test", root=root, download=download)
    if cfg.n_shot != -1:
        train = train.subset(few_shot_indices(train.labels, cfg.n_shot, seed))
    val = None
    if cfg.select_best_on_val:
        train_pos, val_pos = carve_validation(train.labels, cfg.val_fraction, seed)
        train, val = train.subset(train_pos), train.subset(val_pos)
    return train, test, val


def run_transfer(cfg: TransferConfig, force: bool = False) -> dict[str, Any]:
    """Run (or skip) one transfer configuration and return its record."""
    hashed, profile, protocol = resolve(cfg)
    run_id = config_hash(hashed)
    out_dir = _results_dir(cfg, profile)
    json_path = out_dir / f"{run_id}.json"
    if record_exists(json_path) and not force:
        return read_record(json_path)

    started = time.perf_counter()
    seed, device = hashed["seed"], hashed["device"]
    torch.manual_seed(seed)
    train, test, val = load_target(cfg, profile, seed)
    backbone, ticket = _get_network(profile, network=cfg.network, kind=cfg.kind, level=cfg.level,
                                   pretrained_dir=cfg.pretrained_dir)
    backbone = backbone.to(device).eval().requires_grad_(False)
    if device.startswith("cuda"):
        backbone = backbone.to(memory_format=torch.channels_last)

    def on_device(split):
        x, y = split.tensors()
        return x.to(device), y.to(device)

    splits = {"train": on_device(train), "test": on_device(test), "val": on_device(val) if val else None}
    trainable, state_fn = _build(cfg, hashed, protocol, backbone, train.info, splits)
    progress = cfg.progress if cfg.progress is not None else _is_tty()
    result = _fit(trainable, hashed, device, progress, desc=f"{cfg.method} {cfg.target}")

    from reprolib.metrics import calibration_summary

    metrics = calibration_summary(result.test_logits, splits["test"][1].cpu(),
                                  legacy_batch_size=hashed["test_batch_size"])
    metrics["ood"] = _ood_metrics(cfg, profile, trainable, train.info, result.test_logits, hashed)
    label_map = trainable.get_label_map()
    record = {
        "id": run_id,
        "config": {**hashed,
                   "ticket": {"kind": ticket.kind, "level": ticket.level, "id": ticket.id,
                              "density": ticket.density, "density_rlt": ticket.density_rlt},
                   "split": train.split_note, "prompt_size": _prompt_size(cfg, train.info, backbone),
                   "n_train": len(train), "n_test": len(test), "n_val": len(val) if val else 0},
        "metrics": metrics,
        "selection": {"rule": "best_val" if cfg.select_best_on_val else "final_epoch",
                      "epoch": result.selected_epoch + 1},
        "label_map": None if label_map is None else [int(s) for s in label_map.tolist()],
        "curves": result.curves,
        "wall_time_s": time.perf_counter() - started,
        "versions": versions(),
        "device": device_name(device),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    arrays = {k: v.numpy() for k, v in state_fn(trainable).items()}
    write_npz_atomic(out_dir / f"{run_id}.npz", arrays)   # before the JSON (the commit marker)
    write_json_atomic(json_path, record)
    return record


def _ood_metrics(cfg, profile, trainable, info, id_logits, hashed) -> dict:
    """Detection metrics of the trained model on OOD images (reprolib.transfer.ood_eval)."""
    from reprolib.transfer.ood_eval import ood_images, ood_metrics
    from reprolib.transfer.train import predict

    device, forward = hashed["device"], trainable.eval_forward or trainable.forward
    encode = trainable.extra["encode"]
    images = ood_images(cfg.target, profile, info.image_size, info.channels)
    return ood_metrics(lambda x: predict(forward, encode(x.to(device)), hashed["test_batch_size"], device),
                       id_logits, images)


def _get_network(profile, **kwargs):
    from reprolib.sparsity.network import get_network   # lazy: pulls in the model registry

    return get_network(profile, **kwargs)


def _build(cfg, hashed, protocol, backbone, info, splits):
    args = dict(protocol=protocol, epochs=hashed["epochs"], num_classes=info.num_classes,
                seed=hashed["seed"], train=splits["train"], test=splits["test"], val=splits["val"],
                device=hashed["device"])
    if cfg.method == "lp":
        from reprolib.transfer.linear_probe import build_lp, lp_state

        return build_lp(backbone, **args), lp_state
    from reprolib.transfer.prompting import build_prompting, prompt_state

    return build_prompting(backbone, cfg.method, cfg.label_map, prompt_size=info.prompt_size,
                           target=cfg.target, **args), prompt_state


def _fit(trainable, hashed, device, progress, desc):
    from reprolib.transfer.train import fit

    return fit(trainable, hashed["epochs"], hashed["batch_size"], hashed["test_batch_size"],
               hashed["seed"], device=device, progress=progress, desc=desc)


def _prompt_size(cfg, info, backbone) -> int | None:
    if cfg.method == "vp":
        return min(info.prompt_size, backbone.input_size)
    return None if cfg.method == "lp" else backbone.input_size


def _is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
