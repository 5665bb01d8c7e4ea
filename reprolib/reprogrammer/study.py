"""The Reprogrammer study: per target, zero-shot, linear probe, fine-tuning, Reprogrammer and the
Residual Reprogrammer (alpha swept), each scored by evaluate.py and written as one JSON record
at <artifacts>/reprogrammer/runs/<hash of config>.json. Existing records are read, not rerun.

Embedded profile: the Fashion-MNIST stand-in encoder (pretrain.py; NOT CLIP) reprogrammed to
digits and glyphs. Paper profile: open_clip ViT-B-32 / OpenAI weights on CIFAR-10; fine-tuning
runs only on a GPU there (the embedded encoder is cheap enough to fine-tune on the CPU).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from reprolib import paths
from reprolib.batching import predict
from reprolib.data import get_dataset
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_type
from reprolib.records import build_record, config_hash, read_record, write_json_atomic
from reprolib.reprogrammer import train as T
from reprolib.reprogrammer.encoders import TINY_OPEN_CLIP, build_open_clip, tiny_open_clip_config
from reprolib.reprogrammer.evaluate import build_eval_sets, metrics_from_logits, seeded_subset
from reprolib.reprogrammer.pretrain import get_embedded_encoder
from reprolib.reprogrammer.recipe import ReprogrammerRecipe, recipe_for
from reprolib.reprogrammer.reprogram import Reprogrammer, residual_mix

ONE_RUN = "one run"   # a table row of a single seed (the words of reprolib.study.stats.ONE_RUN, a floor above)

METHODS = ("zero_shot", "linear_probe", "finetune", "reprogrammer", "residual_reprogrammer")
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
    """All records of the study (one per target x method, and per alpha for the residual)."""
    recipe = recipe_for(profile)
    seed = (profile.seeds[0] if profile.seeds else 1) if seed is None else seed
    check_type("seed", seed, int)
    for a in alphas:
        if not 0.0 <= float(a) <= 1.0:
            raise ReprolibError(f"residual alpha {a} is outside [0, 1]; valid: numbers in [0, 1]")
    if targets is None:
        targets = list(profile.targets) if recipe.encoder == "embedded" else ["cifar10"]
    device = resolve_device(profile.device)
    runs_dir = paths.reprogrammer_runs_dir(profile.path("artifacts"))

    def config(target: str, method: str, alpha: float | None) -> dict:
        return {"profile": profile.profile, "study": "reprogrammer", "encoder": recipe.encoder,
                "target": target, "method": method, "alpha": alpha, "seed": seed,
                "recipe": dataclasses.asdict(recipe)}

    records: list[dict] = []
    for target in targets:
        wanted = [(m, None) for m in METHODS if m != "residual_reprogrammer"]
        sweep = sorted({float(a) for a in alphas} | {recipe.residual_alpha})   # always the default alpha
        wanted += [("residual_reprogrammer", a) for a in sweep]
        if recipe.encoder != "embedded" and device != "cuda":
            wanted = [w for w in wanted if w[0] != "finetune"]      # ViT-B-32 fine-tuning needs a GPU
        record_files = {w: runs_dir / f"{config_hash(config(target, *w))}.json" for w in wanted}
        missing = [w for w in wanted if not record_files[w].is_file()]
        if missing:
            _run_target(profile, recipe, target, missing, seed, device,
                        lambda w, metrics, extra: write_json_atomic(record_files[w], _record(config(target, *w),
                                                                                             metrics, extra, device)))
        records += [read_record(record_files[w]) for w in wanted]
    return records


def _record(config: dict, metrics: dict, extra: dict, device: str) -> dict:
    return build_record(config_hash(config), config, metrics, wall_time_s=extra.get("wall_time_s", 0.0),
                        device=device, extra_versions=("open_clip",), curves=extra.get("curves", {}),
                        encoder=extra.get("encoder", {}))


def _run_target(profile: Any, recipe: ReprogrammerRecipe, target: str, missing: list, seed: int,
                device: str, write) -> None:
    """Train what the missing records need, score every eval set once, write the records."""
    encoder, encoder_info = get_encoder(profile, recipe, seed)
    encoder = encoder.to(device).eval()
    train_split = get_dataset(target, "train", root=profile.path("data_root"))
    class_names = list(train_split.info.class_names)
    x_train, y_train = seeded_subset(*train_split.tensors(), recipe.max_train, seed)
    sets = build_eval_sets(target, recipe, seed, profile.path("data_root"))
    methods = {m for m, _ in missing}
    zs_text = T.class_text_features(encoder, class_names, recipe.template, device).to(device)
    scale = recipe.logit_scale_eval

    def score(forward) -> dict[str, torch.Tensor]:
        return {k: predict(forward, x, EVAL_BATCH, device) for k, x in sets.items()}

    def emit(method: str, alpha: float | None, logits: dict, started: float, curves: dict | None = None) -> None:
        write((method, alpha), metrics_from_logits(logits, sets),
              {"curves": curves or {}, "encoder": encoder_info, "wall_time_s": time.time() - started})

    if "zero_shot" in methods:
        t0 = time.time()
        emit("zero_shot", None, score(lambda b: scale * encoder.image_features(b) @ zs_text.T), t0)
    if "linear_probe" in methods:
        t0 = time.time()
        head = T.train_linear_probe(T.zero_shot_features(encoder, x_train, device=device), y_train,
                                    len(class_names), recipe, seed).to(device)
        emit("linear_probe", None, score(lambda b: head(encoder.image_features(b))), t0)
    if "finetune" in methods:
        t0 = time.time()
        tuned = T.train_finetune(encoder, x_train, y_train, zs_text, recipe, seed, device)
        emit("finetune", None, score(tuned), t0)         # the head's logits (public: trained, from 100 x text)
    if methods & {"reprogrammer", "residual_reprogrammer"}:
        t0 = time.time()
        model, losses = T.train_reprogrammer(encoder, x_train, y_train, class_names, recipe, seed, device)
        curves = {"epoch": list(range(1, len(losses) + 1)), "train_loss": losses}
        for (method, alpha), logits in _reprogrammer_logits(model, score, missing, scale).items():
            emit(method, alpha, logits, t0, curves)


def _reprogrammer_logits(model: Reprogrammer, score, missing: list, scale: float) -> dict[tuple, dict]:
    """Logits of each missing (reprogrammer | residual_reprogrammer, alpha) record on every eval set;
    the image features are computed once and mixed per alpha (alpha 0 is the plain Reprogrammer)."""
    with torch.no_grad():
        rep_text = model.text_features()
    rep_images, zs_images = score(model.image_features), score(model.zero_shot_image_features)
    out = {}
    for method, alpha in missing:
        if method not in ("reprogrammer", "residual_reprogrammer"):
            continue
        a = 0.0 if method == "reprogrammer" else alpha
        text = residual_mix(rep_text, model.zero_shot_text, a).cpu()
        out[(method, alpha)] = {k: scale * residual_mix(rep_images[k], zs_images[k], a) @ text.T for k in rep_images}
    return out


def reprogrammer_table(records: list[dict]):
    """One row per record: target, method, alpha, `runs` ("one run": each row is a single seed,
    so its numbers have no interval), id_accuracy, mean_covariate_accuracy, each corruption's
    mean accuracy, and per OOD set AUROC / FPR95 (plus their means)."""
    import pandas as pd

    rows = []
    for rec in records:
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
    order = {m: i for i, m in enumerate(METHODS)}
    table = pd.DataFrame(rows)
    if len(table):
        table = table.assign(_o=table["method"].map(order)).sort_values(["target", "_o", "alpha"],
                                                                       na_position="first").drop(columns="_o")
    table = table.reset_index(drop=True)
    table.attrs["footnote"] = f"{ONE_RUN}: every number is a single run (one seed), with no interval"
    return table
