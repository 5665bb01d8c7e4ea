"""Optional run tracking: TensorBoard event files and wandb offline runs rebuilt from run records."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from reprolib.study import tracking
from reprolib.cli import main
from reprolib.errors import ReprolibError

RECORD = {"id": "abc123", "config": {"target": "digits", "method": "vp"},
          "metrics": {"accuracy": 0.75, "ece": 0.05, "mce": 0.2, "nll": 0.8, "brier": 0.3, "ood": {}},
          "curves": {"epoch": [1, 2], "train_loss": [1.5, 0.9], "test_accuracy": [0.6, 0.75], "lr": [0.1, 0.01]}}


def _artifacts(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir(parents=True)
    (runs / "abc123.json").write_text(json.dumps(RECORD))
    (runs / "dead.failed.json").write_text(json.dumps({"id": "dead", "error": "boom"}))
    return tmp_path


def test_tensorboard_events_hold_the_record_curves(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is optional")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    artifacts = _artifacts(tmp_path)
    assert tracking.track_runs(artifacts, ["tensorboard"]) == {"tensorboard": 1}
    assert tracking.track_runs(artifacts, ["tensorboard"]) == {"tensorboard": 0}   # existing views are kept
    events = EventAccumulator(str(tracking.tracking_dir(artifacts, "tensorboard") / "abc123"))
    events.Reload()
    loss = [(e.step, round(e.value, 6)) for e in events.Scalars("curves/train_loss")]
    assert loss == [(1, 1.5), (2, 0.9)]
    assert [round(e.value, 6) for e in events.Scalars("final/ece")] == [0.05]
    assert not list(tracking.tracking_dir(artifacts, "tensorboard").glob(".*"))


def test_wandb_offline_logs_one_step_per_epoch(tmp_path: Path, monkeypatch) -> None:
    calls = []

    class Run:
        summary: dict = {}

        def log(self, values, step):
            calls.append(("log", step, values))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs["mode"], kwargs["name"])) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: object())
    assert tracking.track_record(RECORD, tmp_path, "wandb")
    assert calls[0] == ("init", "offline", "abc123") and calls[-1] == ("finish",)
    assert calls[2] == ("log", 2, {"curves/train_loss": 0.9, "curves/test_accuracy": 0.75, "curves/lr": 0.01})
    assert Run.summary["final/accuracy"] == 0.75


def test_missing_package_or_unknown_tracker_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ReprolibError, match="tracker 'wandb' needs the wandb package.*choose among: none"):
        tracking.track_runs(_artifacts(tmp_path), ["wandb"])
    assert main(["track", "--profile", "smoke", "--to", "mlflow"]) == 2
    assert "mlflow" in capsys.readouterr().err and not (tmp_path / "tracking").exists()
