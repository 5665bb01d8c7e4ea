"""Cheap runners with run_transfer's contract, importable by the sweep's spawned workers.

Each writes its record atomically (reprolib.records) under the run's id, skips a run whose record
exists, and logs `start|done <id> <pid> <CUDA_VISIBLE_DEVICES>` to `<results>/../executions.log`
so the tests can count executions per run and see which worker (and device) ran what.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from reprolib.records import read_record, record_exists, record_id, write_json_atomic

PAUSE_ENV = "REPROLIB_FAKE_PAUSE"   # seconds each fake run "trains"


def _log(out: Path, event: str, run_id: str) -> None:
    with open(out.parent / "executions.log", "a") as log:
        log.write(f"{event} {run_id} {os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\n")


def _fake_config(cfg) -> dict:
    """The fake record's config: the TransferConfig's fields, with the network names standing in for
    the network fingerprint a real run hashes (records.record_id leaves the names out)."""
    hashed = {k: v for k, v in cfg.to_dict().items() if k not in ("results_path", "progress")}
    hashed["network_fingerprint"] = [cfg.network, cfg.kind, cfg.level, cfg.pretrained_dir]
    return hashed


def fake_run(cfg) -> dict:
    from tqdm.auto import tqdm

    tqdm(total=1, disable=True).close()   # as a real run's loops do: tqdm's lock exists in this process
    hashed = _fake_config(cfg)
    run_id = record_id(hashed)
    out = Path(cfg.results_path)
    path = out / f"{run_id}.json"
    if record_exists(path):
        return read_record(path)
    _log(out, "start", run_id)
    time.sleep(float(os.environ.get(PAUSE_ENV, "0")))
    record = {"id": run_id, "config": hashed, "metrics": {"accuracy": 0.5, "ece": 0.1, "nll": 1.0},
              "device": os.environ.get("CUDA_VISIBLE_DEVICES", "-")}
    write_json_atomic(path, record)
    _log(out, "done", run_id)
    return record


def dying_run(cfg) -> dict:
    """fake_run, except that the first attempt at the dense 5-shot seed-1 LP run kills its worker."""
    marker = Path(cfg.results_path).parent / "died-once"
    if cfg.method == "lp" and cfg.network == "dense" and cfg.n_shot == 5 and cfg.seed == 1 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_run(cfg)


def cli_main(results: str, args: list[str]) -> int:
    """`python -m reprolib sweep --profile smoke ARGS` with the fake runner, on the folder `results`."""
    import reprolib.sweep.runner as sweep
    import reprolib.sweep.cli as sweep_cli
    from reprolib.cli import main

    real_build = sweep.build_grid
    sweep.build_grid = lambda profile: [c.replace(results_path=results) for c in real_build(profile)]
    sweep.run_transfer = fake_run
    sweep_cli.update_ledger = lambda artifacts, **packing: _ledger_marker(results)
    return main(["sweep", "--profile", "smoke", *args])


def _ledger_marker(results: str) -> list:
    """Stands in for update_ledger: counts the records on disk when the ledger would be rebuilt."""
    records = [p for p in Path(results).glob("*.json") if not p.name.endswith(".failed.json")]
    (Path(results).parent / "ledger-rebuilt").write_text(str(len(records)))
    return records


def command(results: Path, *args: str) -> list[str]:
    """The command line of a sweep process on `results` with the fake runner (for subprocess)."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import sweep_fakes; "
            f"sys.exit(sweep_fakes.cli_main({str(results)!r}, {list(args)!r}))")
    return [sys.executable, "-c", code]


def fake_existing(cfg) -> dict | None:
    """reprolib.transfer.run.existing_record for fake_run's records."""
    path = Path(cfg.results_path) / f"{record_id(_fake_config(cfg))}.json"
    return read_record(path) if record_exists(path) else None
