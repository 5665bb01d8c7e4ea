"""The shipped scores archive: bytes per run for each codec, and what each codec does to the metrics.

`python bench/bench_archive.py --artifacts DIR [--out bench/results.md]` packs the finished runs
under `DIR/runs` (records, `<id>.scores.npz`, `<id>.ood-<set>.npz`) with every codec of
reprolib.scores.archive.CODECS into a scratch folder and reports, per codec: the archive's bytes,
bytes per run and bits per logit value (the logits stream alone), and the largest and median
|difference| over runs between each metric recomputed from the archive and from the runs' float32
scores (accuracy, ECE, NLL, Brier, adaptive and classwise ECE, each OOD group's AUROC and FPR95).
Also: per-run `np.savez_compressed` float32 files (what `runs/` holds) for comparison, and the
bytes of one learned prompt picture (the explorer's, float16). The
projection to a study of another size is bytes/run x runs. Nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_table import to_markdown  # noqa: E402  (beside this file)

from reprolib.scores import archive  # noqa: E402
from reprolib.scores.ood_files import saved_scores  # noqa: E402
from reprolib.scores.recompute import leaves  # noqa: E402
from reprolib.scores.registry import compute_metrics  # noqa: E402

SHOWN = ("accuracy", "ece", "nll", "brier", "adaptive_ece", "classwise_ece", "msp_auroc", "energy_auroc",
         "msp_fpr95", "energy_fpr95")


def _records(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))
            if p.name.count(".") == 1 and (runs / f"{p.stem}.scores.npz").is_file()]


def _differences(packed: archive.ScoresArchive, exact: dict[str, dict], records: list[dict]) -> dict[str, list]:
    """{metric: [|archive - float32| per run and OOD group]}."""
    out: dict[str, list[float]] = {name: [] for name in SHOWN}
    for record in records:
        again = leaves(compute_metrics(packed.scores(record["id"]), record["config"]))
        for path, value in exact[record["id"]].items():
            name = path.split(".")[-1]
            if name in out and isinstance(value, float):
                out[name].append(abs(value - again[path]))
    return out


def measure(artifacts: Path) -> list[dict]:
    """One row per codec (module docstring)."""
    runs = artifacts / "runs"
    records = _records(runs)
    if not records:
        raise SystemExit(f"no finished runs with saved scores under {runs}")
    exact = {r["id"]: leaves(compute_metrics(saved_scores(runs, r), r["config"])) for r in records}
    values = sum(s.test_logits.numel() + sum(v.numel() for v in s.ood_logits.values())
                 for s in (saved_scores(runs, r) for r in records))
    files = sum(p.stat().st_size for r in records for p in runs.glob(f"{r['id']}.*npz") if p.name.count(".") > 1)
    rows = [{"benchmark": "runs/: <id>.scores.npz + <id>.ood-<set>.npz (float32, zip deflate)",
             "value": f"{files / len(records):.0f} B/run", "note": f"{len(records)} runs, {values / len(records):.0f} "
             f"logit values per run"}]
    rows.append(_pictures(runs, records))
    for codec in archive.CODECS:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "runs").symlink_to(runs.resolve(), target_is_directory=True)
            path = archive.pack(scratch, [archive.Folder("runs", records)], codec, "bench")
            size = path.stat().st_size
            packed = archive.read(path)
            logits = len(np.load(path)["logits"])
            diffs = _differences(packed, exact, records)
        shown = ", ".join(f"{n} {max(d):.1e} ({statistics.median(d):.0e})" for n, d in diffs.items() if d)
        rows.append({"benchmark": f"archive, codec {codec}", "value": f"{size / len(records):.0f} B/run",
                     "unit": f"{8 * logits / values:.2f} bits/logit",
                     "note": f"{size / 1e6:.2f} MB in all; max |diff| vs float32 (median): {shown}"})
    return rows


def _pictures(runs: Path, records: list[dict]) -> dict:
    """The `prompts` stream's bytes per learned prompt picture (float16), every prompt run shipping one."""
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "runs").symlink_to(runs.resolve(), target_is_directory=True)
        path = archive.pack(scratch, [archive.Folder("runs", records, frozenset(r["id"] for r in records))],
                            "float16", "bench")
        shipped = sum(1 for run in archive.read(path).manifest["runs"] if any(k.startswith("prompt.") for k in
                                                                              run["learned"]))
        size = len(np.load(path)["prompts"])
    return {"benchmark": "learned prompt pictures (float16, xz)", "value": f"{size / max(shipped, 1):.0f} B/picture",
            "note": f"{shipped} prompt runs"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_archive.py", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", required=True, help="an artifacts folder whose runs/ holds finished runs")
    parser.add_argument("--title", default="Shipped scores archive", help="the results section's title")
    parser.add_argument("--out", default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)
    table = to_markdown(measure(Path(args.artifacts)), f"{args.title} ({Path(args.artifacts).name})")
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
