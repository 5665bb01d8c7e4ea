"""A synthetic study on disk: run records and tickets whose numbers follow a known rule.

`write_synthetic_study(artifacts, ...)` (used through the fixtures of conftest.py and by
test_ledger directly) writes records in the ARCHITECTURE.md schema plus each ticket's
sparsity.json, so tests can check the numbers the ledger, plots and claims report. With
`replicates` > 1 every ticket replicate r has its own tickets (under tickets/replicate_RR) and
seeds replicate_seed(seed, r), the dense model shared; `replicate_noise` gives each (replicate,
target, arm, ticket) a seeded accuracy deviation of that sd (ticket-to-ticket variation).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from reprolib import paths
from reprolib.config import replicate_seed
from reprolib.records import record_id

ARMS = ["lp", "vp/ilm", "smm/ilm", "full/ilm", "narrow/ilm"]


def true_accuracy(arm: str, level: int, n_shot: int, seed: int, kind: str = "imp") -> float:
    """LP loses 0.5 points per level; prompts lose 3 (full data) or 5 (few-shot) points per level."""
    base = 0.80 if arm == "lp" else 0.70
    per_level = 0.005 if arm == "lp" else (0.03 if n_shot == -1 else 0.05)
    penalty = 0.02 if kind != "imp" else 0.0
    return base - per_level * level - penalty + 0.002 * (seed - 1) - (0.1 if n_shot != -1 else 0.0)


def ticket_deviation(target: str, arm: str, kind: str, level: int, replicate: int, sd: float) -> float:
    """The seeded accuracy deviation of one ticket replicate's network in one (target, arm): 0 for dense."""
    if level == 0 or sd == 0:
        return 0.0
    key = f"{target}-{arm}-{kind}{level}-r{replicate}"
    return float(np.random.default_rng(zlib.crc32(key.encode())).normal(0.0, sd))


def make_record(target: str, arm: str, kind: str, level: int, n_shot: int, seed: int, ood: bool = False,
                noise: float = 0.0, replicate: int = 1, replicate_noise: float = 0.0) -> dict:
    """One run's record; `noise` > 0 adds seeded Gaussian noise of that sd to its accuracy (and a
    tenth of it to its ECE), as training noise would, fixed by the run's id; `replicate_noise`
    the ticket replicate's own deviation (ticket_deviation)."""
    method, _, lmap = arm.partition("/")
    run_id = f"{target}-{arm.replace('/', '_')}-{kind}{level}-{n_shot}-{seed}"
    jitter = np.random.default_rng(zlib.crc32(run_id.encode())).normal(0.0, 1.0, 2) * noise
    acc = true_accuracy(arm, level, n_shot, seed % 1000, kind) + float(jitter[0]) + \
        ticket_deviation(target, arm, kind, level, replicate, replicate_noise)
    ece = 0.05 + 0.01 * level + 0.001 * seed + 0.1 * float(jitter[1])
    counts = [0] * 13 + [40, 60]
    metrics = {"accuracy": acc, "ece": ece, "mce": 2 * ece, "nll": 1.0 + ece, "brier": 0.3 + ece,
               "legacy_rlt_ece": ece * (40.0 if method == "lp" else 0.5),
               "reliability": {"counts": counts, "confidence": [0.0] * 13 + [0.9, 0.97],
                               "accuracy": [0.0] * 13 + [0.9 - ece, 0.97 - ece],
                               "edges": [b / 15 for b in range(16)]}}
    if ood:
        metrics["ood"] = {"auroc_msp": 0.9 - 0.01 * level, "fpr95_msp": 0.3}
    config = {"profile": "smoke", "backbone": "small_resnet", "target": target, "method": method,
              "label_map": lmap or None, "network": "dense" if level == 0 else "LT", "kind": kind, "level": level,
              "ticket": {"kind": "dense" if level == 0 else kind, "level": level, "id": f"{kind}-{level}",
                         "density": 0.8 ** level, "density_rlt": 0.8 ** level + 0.01},
              "n_shot": n_shot, "seed": seed, "replicate": replicate, "protocol": "smoke", "split": "official",
              "prompt_size": 20 if method == "vp" else None,
              # what the network is (the run identity hashes this, not the names above)
              "network_fingerprint": {"provenance": "dense" if level == 0 else "here",
                                      "digest": "dense" if level == 0 else f"{kind}-{level}-r{replicate}"}}
    # the id a real run's config hashes to (records.record_id), so the ledger's verification passes
    return {"id": record_id(config), "config": config,
            "metrics": metrics, "label_map": None if method == "lp" else [3, 1, 0],
            "curves": {"epoch": [1], "train_loss": [1.0], "train_accuracy": [acc], "test_accuracy": [acc]},
            "wall_time_s": 1.5, "versions": {}, "device": "cpu", "created": "2024-01-01T00:00:00+00:00"}


def write_synthetic_study(artifacts: Path, targets=("digits", "glyphs"), arms=ARMS, levels=(0, 2, 4),
                          n_shots=(5, -1), seeds=(1, 2), ood: bool = False,
                          upstream_drop_per_level: float = 0.002, noise: float = 0.0, replicates: int = 1,
                          replicate_noise: float = 0.0) -> int:
    """Records + tickets' sparsity.json under `artifacts`; returns the number of records.

    Many parameters because each is one independent knob of the synthetic study."""
    runs = paths.runs_dir(artifacts)
    runs.mkdir(parents=True, exist_ok=True)
    tickets = [("imp", lv) for lv in levels] + [("magnitude", max(levels)), ("random", max(levels))]
    for replicate in range(1, replicates + 1):
        for kind, level in tickets:
            if replicate > 1 and (level == 0 or kind != "imp"):   # the dense model and the baselines: replicate 1
                continue
            folder = paths.ticket_dir(artifacts, kind, level, replicate)
            folder.mkdir(parents=True, exist_ok=True)
            upstream = 0.90 - upstream_drop_per_level * level - (0.05 if kind == "random" else 0.0)
            (folder / "sparsity.json").write_text(json.dumps(
                {"density": 0.8 ** level, "density_rlt": 0.8 ** level + 0.01, "upstream_test_accuracy": upstream,
                 "train_seconds": 10.0}))
    count = 0
    for replicate in range(1, replicates + 1):
        for target in targets:
            for arm in arms:
                for kind, level in tickets:
                    if replicate > 1 and kind != "imp":
                        continue
                    for n_shot in n_shots:
                        for seed in seeds:
                            record = make_record(target, arm, kind, level, n_shot, replicate_seed(seed, replicate), ood,
                                                 noise, replicate, replicate_noise)
                            (runs / f"{record['id']}.json").write_text(json.dumps(record))
                            count += 1
    return count
