"""Optional run tracking: TensorBoard event files and wandb offline runs, written from run records.

`python -m reprolib track --profile P [--to tensorboard,wandb]` (off unless asked for) reads
every finished record in `<artifacts>/runs/` and writes, per run, its curves (one step per
epoch: train loss and accuracy, test and validation accuracy, learning rate) and its final
metrics under `<artifacts>/tracking/<tracker>/<run id>/`. The record stays the source of
truth: trackers are views of it, rebuilt from it at any time, and a run whose view exists is
skipped. TensorBoard needs the `tensorboard` package, wandb the `wandb` package (used in
offline mode: nothing leaves the machine; `wandb sync` uploads later if you want).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.config import load_profile, profile_help
from reprolib.errors import ReprolibError, check_choice
from reprolib.scores.registry import names as metric_names

TRACKERS = ["tensorboard", "wandb"]
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
FINAL_METRICS = metric_names(place="tracking")   # reprolib.scores.registry


def tracking_dir(artifacts: str | Path, tracker: str) -> Path:
    """`<artifacts>/tracking/<tracker>`: one folder per run id inside."""
    return Path(artifacts) / "tracking" / tracker


def _check_installed(tracker: str) -> None:
    check_choice("tracker", tracker, TRACKERS)
    if importlib.util.find_spec(PACKAGES[tracker]) is None:
        raise ReprolibError(f"tracker {tracker!r} needs the {PACKAGES[tracker]} package, which is not installed; "
                            f"install it or choose among: "
                            f"{', '.join(t for t in TRACKERS if importlib.util.find_spec(PACKAGES[t])) or 'none'}")


def epoch_scalars(record: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """(epoch, {curve name: value}) for every epoch of the record's curves."""
    curves = record.get("curves") or {}
    epochs = curves.get("epoch", [])
    names = [k for k in curves if k != "epoch"]
    return [(int(epoch), {name: float(curves[name][i]) for name in names if i < len(curves[name])})
            for i, epoch in enumerate(epochs)]


def final_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's final metrics that are numbers."""
    metrics = record.get("metrics") or {}
    return {f"final/{k}": float(metrics[k]) for k in FINAL_METRICS if isinstance(metrics.get(k), (int, float))}


def _write_tensorboard(record: dict[str, Any], folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    try:
        for epoch, scalars in epoch_scalars(record):
            for name, value in scalars.items():
                writer.add_scalar(f"curves/{name}", value, epoch)
        last = max((e for e, _ in epoch_scalars(record)), default=0)
        for name, value in final_scalars(record).items():
            writer.add_scalar(name, value, last)
        writer.add_text("config", f"```\n{json.dumps(record.get('config', {}), indent=1, sort_keys=True)}\n```")
    finally:
        writer.close()


def _write_wandb(record: dict[str, Any], folder: Path) -> None:
    import wandb

    run = wandb.init(mode="offline", dir=str(folder), name=record["id"], id=record["id"],
                     config=record.get("config", {}), reinit=True)
    try:
        for epoch, scalars in epoch_scalars(record):
            run.log({f"curves/{k}": v for k, v in scalars.items()}, step=epoch)
        run.summary.update(final_scalars(record))
    finally:
        run.finish()


WRITERS = {"tensorboard": _write_tensorboard, "wandb": _write_wandb}


def track_record(record: dict[str, Any], artifacts: str | Path, tracker: str) -> bool:
    """Write one record's view for `tracker`; False when it already exists.

    The view is built in a temporary folder and renamed into place, so an interrupted
    export leaves no half-written run behind.
    """
    _check_installed(tracker)
    final = tracking_dir(artifacts, tracker) / record["id"]
    if final.exists():
        return False
    building = final.with_name(f".{record['id']}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    WRITERS[tracker](record, building)
    building.rename(final)
    return True


def track_runs(artifacts: str | Path, trackers: list[str]) -> dict[str, int]:
    """Export every finished record under `artifacts`; returns tracker -> runs newly written."""
    for tracker in trackers:
        _check_installed(tracker)
    records = [json.loads(p.read_text()) for p in sorted(paths.runs_dir(artifacts).glob("*.json"))
               if not p.name.endswith(".failed.json")]
    return {tracker: sum(track_record(r, artifacts, tracker) for r in records if "id" in r) for tracker in trackers}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help=profile_help())
    parser.add_argument("--to", default="tensorboard", help=f"comma-separated trackers: {', '.join(TRACKERS)}")


def run(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    trackers = [check_choice("tracker", t.strip(), TRACKERS) for t in args.to.split(",") if t.strip()]
    written = track_runs(profile.path("artifacts"), trackers)
    for tracker, count in written.items():
        print(f"{tracker}: {count} runs written -> {tracking_dir(profile.path('artifacts'), tracker)}")
    return 0
