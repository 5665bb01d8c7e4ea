"""A Reprogrammer run on the transfer runs' path: resolved description -> verified record -> saved scores.

`describe` gives a run's resolved description: the study, target, method, residual alpha and
seed; the device and, on the CPU, the kernel facts that decide the numbers
(reprolib.determinism.kernel_facts); the whole recipe; the encoder (its kind, a digest of its
weights, and a digest of the token ids of the captions the run uses: vocabulary and tokenizer);
the data (`TargetInputs`: the target's train and test splits and every OOD partner's test split,
each as its loader's definition and content fingerprint, and the class names the captions use).
Its id (`run_id`) hashes all of it but NEUTRAL_KEYS: the profile's name, which changes no number
(two profiles with one recipe are one run; tests/test_run_description.py proves it).

A run is done when its record verifies (`finished`: records.verified_record against this id and
the required metrics), not when a file exists: a cut or edited record is moved aside and rerun.
Each run saves the logits its metrics are computed from beside its record, `<id>.scores.npz`, in
reprolib.scores.saved's format (`test_logits`, `test_labels`, `ood_<set>`: `load_scores` reads
it) plus `shift_<corruption>_<severity>` for the covariate-shift sets; `metrics_from_scores`
recomputes the record's metrics from that file, bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolib.data import get_dataset, info
from reprolib.determinism import kernel_facts
from reprolib.records import config_hash, is_aside_file, verified_record, write_run_files
from reprolib.reprogrammer.evaluate import metrics_from_logits, ood_split
from reprolib.scores.saved import SavedScores, load_scores, scores_path
from reprolib.sparsity.digest import tensors_digest

NEUTRAL_KEYS = ("profile",)            # how the study names the run; no number depends on it
REQUIRED_METRICS = ("id_accuracy",)    # what a finished Reprogrammer record holds, finite
SHIFT_PREFIX = "shift_"                # saved logits of a covariate-shift set: shift_<kind>_<severity>


def run_id(config: dict[str, Any]) -> str:
    """The id a Reprogrammer run's description hashes to: all of it but NEUTRAL_KEYS."""
    return config_hash({k: v for k, v in config.items() if k not in NEUTRAL_KEYS})


@dataclass(frozen=True)
class TargetInputs:
    """What every run on one target holds in its description: the encoder's identity and the data's."""

    encoder: dict[str, Any]
    data: dict[str, Any]


def _split_identity(split) -> dict[str, Any]:
    return {"definition": split.definition, "content": split.content_fingerprint()}


def target_inputs(encoder, recipe, target: str, data_root: Path | None) -> TargetInputs:
    """The encoder's and the data's part of every description on `target`. An OOD partner that
    cannot be loaded is a one-line error (evaluate.ood_split), before anything trains."""
    train, test = (get_dataset(target, split, root=data_root) for split in ("train", "test"))
    partners = {name: _split_identity(ood_split(target, name, data_root)) for name in info(target).ood_partners}
    class_names = list(train.info.class_names)
    tokens = encoder.tokenize([recipe.template.format(c) for c in class_names])
    captions = hashlib.blake2b(tokens.to(torch.int64).numpy().astype("<i8").tobytes(), digest_size=16).hexdigest()
    return TargetInputs(
        encoder={"kind": recipe.encoder, "weights": tensors_digest(encoder.state_dict()), "captions": captions},
        data={"train": _split_identity(train), "test": _split_identity(test), "ood": partners,
              "class_names": class_names})


def describe(profile_name: str, recipe, run: tuple[str, float | None], target: str, seed: int, device: str,
             inputs: TargetInputs) -> dict[str, Any]:
    """The resolved description of the (method, alpha) `run` on `target` (see the module docstring)."""
    method, alpha = run
    return {"study": "reprogrammer", "target": target, "method": method, "alpha": alpha, "seed": seed,
            "device": device, "cpu_kernels": kernel_facts(device), "recipe": dataclasses.asdict(recipe),
            "encoder": inputs.encoder, "data": inputs.data, "profile": profile_name}


def record_file(runs_dir: Path, config: dict[str, Any]) -> Path:
    return Path(runs_dir) / f"{run_id(config)}.json"


def finished(runs_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's sound record, or None (none yet, or a bad one, moved aside: the study reruns it)."""
    return verified_record(record_file(runs_dir, config), recompute_id=run_id, required=REQUIRED_METRICS)


def shipped_records(runs_dir: Path, targets: list[str], seed: int) -> list[dict[str, Any]]:
    """The sound records in `runs_dir` of `targets` and `seed`, read as a checkout ships them:
    without their `<id>.scores.npz` (records.verified_record, absent_files_ok). Nothing here needs
    the encoder or the data, so a clone reports its shipped study in a second; a record edited by
    hand, or a scores file that is there but damaged, is still named and set aside."""
    records = [verified_record(path, recompute_id=run_id, required=REQUIRED_METRICS, absent_files_ok=True)
               for path in sorted(Path(runs_dir).glob("*.json")) if not is_aside_file(path)]
    return [r for r in records if r and r["config"]["target"] in targets and r["config"]["seed"] == seed]


def scores_arrays(logits: dict[str, torch.Tensor], id_labels: torch.Tensor) -> dict[str, np.ndarray]:
    """`<id>.scores.npz`'s arrays from the logits keyed as EvalSets.items() names the sets."""
    ood = {key.removeprefix("ood/"): value for key, value in logits.items() if key.startswith("ood/")}
    arrays = SavedScores(logits["id"], id_labels, ood).arrays()
    shifts = {SHIFT_PREFIX + key.replace("/", "_"): value.detach().cpu().numpy() for key, value in logits.items()
              if key != "id" and not key.startswith("ood/")}
    return {**arrays, **shifts}


def write_run(runs_dir: Path, record: dict[str, Any], logits: dict[str, torch.Tensor],
              id_labels: torch.Tensor) -> Path:
    """`<id>.scores.npz`, then `<id>.json` (the commit marker), each atomically."""
    arrays = scores_arrays(logits, id_labels)
    companion = (scores_path(runs_dir, record["id"]), lambda f: np.savez_compressed(f, **arrays))
    return write_run_files(runs_dir, record["id"], record, None, companions=(companion,))


def metrics_from_scores(path: str | Path) -> dict[str, Any]:
    """The metrics of a Reprogrammer run recomputed from its saved scores (a cut or malformed file
    is load_scores' one-line error)."""
    saved = load_scores(path)
    with np.load(path, allow_pickle=False) as npz:
        shifts = {name.removeprefix(SHIFT_PREFIX): torch.from_numpy(npz[name]) for name in npz.files
                  if name.startswith(SHIFT_PREFIX)}
    logits = {"id": saved.test_logits}
    logits.update({"/".join(name.rsplit("_", 1)): value for name, value in shifts.items()})
    logits.update({f"ood/{name}": value for name, value in saved.ood_logits.items()})
    return metrics_from_logits(logits, saved.test_labels)
