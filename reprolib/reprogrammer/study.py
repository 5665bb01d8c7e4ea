"""The Reprogrammer study: per target, zero-shot, linear probe, fine-tuning, Reprogrammer and the
Residual Reprogrammer (alpha swept), each scored by evaluate.py and written as one JSON record at
<artifacts>/reprogrammer/runs/<id>.json beside the logits it was scored from (<id>.scores.npz),
on the transfer runs' path (reprolib.reprogrammer.runs): the id hashes the run's resolved
description (device, encoder weights, data fingerprints; not the profile's name), and a run whose
record verifies is read, not rerun.

Embedded profile: the Fashion-MNIST stand-in encoder (pretrain.py; NOT CLIP) reprogrammed to
digits and glyphs. Paper profile: open_clip ViT-B-32 / OpenAI weights on CIFAR-10; fine-tuning
runs only on a GPU there (the embedded encoder is cheap enough to fine-tune on the CPU).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from reprolib import paths
from reprolib.batching import predict
from reprolib.data import get_dataset
from reprolib.determinism import pin_threads
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_type
from reprolib.records import build_record, read_record
from reprolib.reprogrammer import train as T
from reprolib.reprogrammer.encoders import TINY_OPEN_CLIP, build_open_clip, tiny_open_clip_config
from reprolib.reprogrammer.evaluate import build_eval_sets, metrics_from_logits, seeded_subset
from reprolib.reprogrammer.method_runs import TargetRun
from reprolib.reprogrammer.methods import METHODS, get_method, mixing_alpha
from reprolib.reprogrammer.pretrain import get_embedded_encoder
from reprolib.reprogrammer.recipe import ReprogrammerRecipe, recipe_for
from reprolib.reprogrammer.runs import (describe, finished, record_file, run_id, shipped_records, target_inputs,
                                        write_run)

ONE_RUN = "one run"   # a table row of a single seed (the words of reprolib.study.stats.ONE_RUN, a floor above)

DEFAULT_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
EVAL_BATCH = 256   # images per forward pass when scoring the evaluation sets


def get_encoder(profile: Any, recipe: ReprogrammerRecipe, seed: int):
    """(encoder, info) for the recipe: the cached embedded stand-in or open_clip's pretrained model."""
    if recipe.encoder == "embedded":
        return get_embedded_encoder(profile.path("artifacts"), recipe, seed, profile.path("data_root"))
    tiny = recipe.open_clip_arch == TINY_OPEN_CLIP
    encoder = build_open_clip(recipe.open_clip_arch, recipe.open_clip_pretrained or None,
                              model_config=tiny_open_clip_config() if tiny else None,
                              cache_dir=str(paths.open_clip_dir(profile.path("data_root"))))
    return encoder, {"arch": recipe.open_clip_arch, "pretrained": recipe.open_clip_pretrained}


def run_reprogrammer_study(profile: Any, targets: list[str] | None = None,
                           alphas: tuple[float, ...] = DEFAULT_ALPHAS, seed: int | None = None) -> list[dict]:
    """All records of the study (one per target x method, and per alpha for the residual); a run whose
    record verifies is read (reprolib.reprogrammer.runs.finished), every other one runs."""
    recipe = recipe_for(profile)
    targets, seed = _targets_and_seed(profile, recipe, targets, seed)
    for a in alphas:
        if not 0.0 <= float(a) <= 1.0:
            raise ReprolibError(f"residual alpha {a} is outside [0, 1]; valid: numbers in [0, 1]")
    device = resolve_device(profile.device)
    if device == "cpu":
        pin_threads()   # the protocol's CPU threads, as for a transfer run: the same numbers in any process
    runs_dir = paths.reprogrammer_runs_dir(profile.path("artifacts"))
    encoder, encoder_info = get_encoder(profile, recipe, seed)
    encoder = encoder.to(device).eval()
    records: list[dict] = []
    for target in targets:
        inputs = target_inputs(encoder, recipe, target, profile.path("data_root"))
        configs = {w: describe(profile.profile, recipe, w, target, seed, device, inputs)
                   for w in _wanted(recipe, alphas, device)}
        done = {w: finished(runs_dir, config) for w, config in configs.items()}
        missing = [w for w in configs if done[w] is None]
        if missing:
            def write(w, logits, labels, extra, configs=configs):
                record = _record(configs[w], metrics_from_logits(logits, labels), extra, device, encoder_info)
                write_run(runs_dir, record, logits, labels)   # <id>.scores.npz, then <id>.json

            _run_target(profile, recipe, target, missing, seed, device, encoder, write)
        records += [done[w] or read_record(record_file(runs_dir, configs[w])) for w in configs]
    return records


def shipped_reprogrammer_study(profile: Any, targets: list[str] | None = None, seed: int | None = None) -> list[dict]:
    """The study's records as a checkout ships them (runs.shipped_records: without their logits),
    for the targets and seed `run_reprogrammer_study` would run; nothing trains or is written."""
    targets, seed = _targets_and_seed(profile, recipe_for(profile), targets, seed)
    return shipped_records(paths.reprogrammer_runs_dir(profile.path("artifacts")), targets, seed)


def _targets_and_seed(profile: Any, recipe: ReprogrammerRecipe, targets: list[str] | None,
                      seed: int | None) -> tuple[list[str], int]:
    """The study's targets (the profile's for the embedded encoder; CIFAR-10 for CLIP) and its one seed."""
    seed = (profile.seeds[0] if profile.seeds else 1) if seed is None else seed
    check_type("seed", seed, int)
    if targets is None:
        targets = list(profile.targets) if recipe.encoder == "embedded" else ["cifar10"]
    return targets, seed


def _wanted(recipe: ReprogrammerRecipe, alphas: tuple[float, ...], device: str) -> list[tuple[str, float | None]]:
    """The (method, alpha) runs of one target: every method, the residual at each alpha and the default."""
    wanted = [(m, None) for m in METHODS if not get_method(m).sweeps_alpha]
    sweep = sorted({float(a) for a in alphas} | {recipe.residual_alpha})   # always the default alpha
    wanted += [(m, a) for m in METHODS if get_method(m).sweeps_alpha for a in sweep]
    if recipe.encoder != "embedded" and device != "cuda":   # e.g. ViT-B-32 fine-tuning needs a GPU
        wanted = [w for w in wanted if not get_method(w[0]).large_encoder_needs_gpu]
    return wanted


def _record(config: dict, metrics: dict, extra: dict, device: str, encoder_info: dict) -> dict:
    return build_record(run_id(config), config, metrics, wall_time_s=extra.get("wall_time_s", 0.0),
                        device=device, extra_versions=("open_clip",), curves=extra.get("curves", {}),
                        encoder=encoder_info)


def _run_target(profile: Any, recipe: ReprogrammerRecipe, target: str, missing: list, seed: int,
                device: str, encoder, write) -> None:
    """Train what the missing records need, score every eval set once, write each record with the
    logits its metrics come from (`write(run, logits, id_labels, extra)`)."""
    train_split = get_dataset(target, "train", root=profile.path("data_root"))
    class_names = list(train_split.info.class_names)
    x_train, y_train = seeded_subset(*train_split.tensors(), recipe.max_train, seed)
    sets = build_eval_sets(target, recipe, seed, profile.path("data_root"))
    zs_text = T.class_text_features(encoder, class_names, recipe.template, device).to(device)

    def score(forward) -> dict[str, torch.Tensor]:
        return {k: predict(forward, x, EVAL_BATCH, device) for k, x in sets.items()}

    run = TargetRun(encoder, zs_text, x_train, y_train, class_names, recipe, seed, device, score)
    for method_run in dict.fromkeys(get_method(m).run for m, _ in missing):   # methods sharing a run: once
        started = time.time()
        asked = [(w, mixing_alpha(*w)) for w in missing if get_method(w[0]).run is method_run]
        logits, curves = method_run(run, asked)
        for w, by_set in logits.items():
            write(w, by_set, sets.id_labels, {"curves": curves, "wall_time_s": time.time() - started})


def reprogrammer_table(records: list[dict]):
    """One row per record: target, method, alpha, `runs` ("one run": each row is a single seed,
    so its numbers have no interval), id_accuracy, mean_covariate_accuracy, each corruption's
    mean accuracy, and per OOD set AUROC / FPR95 (plus their means)."""
    import pandas as pd

    # rows by target, method (METHODS' order), alpha (none first), whatever order the records came in: the
    # columns follow the first row's OOD sets, so the table is the same from any listing of the same records
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for rec in sorted(records, key=lambda r: (r["config"]["target"], order[r["config"]["method"]],
                                              -1.0 if r["config"].get("alpha") is None else r["config"]["alpha"])):
        cfg, met = rec["config"], rec["metrics"]
        row = {"target": cfg["target"], "method": cfg["method"], "alpha": cfg.get("alpha"), "runs": ONE_RUN,
               "id_accuracy": met["id_accuracy"], "mean_covariate_accuracy": met["mean_covariate_accuracy"]}
        for kind, by_sev in met["ood_generalisation"].items():
            row[f"acc_{kind}"] = sum(by_sev.values()) / len(by_sev)
        det = met["ood_detection"]
        for name, d in det.items():
            row[f"auroc_{name}"], row[f"fpr95_{name}"] = d["auroc"], d["fpr95"]
        row["mean_auroc"] = sum(d["auroc"] for d in det.values()) / len(det)
        row["mean_fpr95"] = sum(d["fpr95"] for d in det.values()) / len(det)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["footnote"] = f"{ONE_RUN}: every number is a single run (one seed), with no interval"
    return table
