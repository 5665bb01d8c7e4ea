"""Notebook 02's report for GPU profiles (finished / failed / missing per cell and the command that
completes them), profiles discovered and loaded by path, and `notebooks` cleaning up on SIGTERM
and after kill -9 (its `.running` copy, its kernel)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reprolib.config import load_profile, profile_names
from reprolib.errors import ReprolibError
from reprolib.records import write_failure
from reprolib.sweep.runner import build_grid
from reprolib.sweep.status import grid_status, summary_line
from sweep_fakes import fake_run


def test_status_counts_finished_failed_and_missing_runs_per_cell(tmp_path: Path) -> None:
    profile = load_profile("smoke")
    configs = [c.replace(results_path=str(tmp_path)) for c in build_grid(profile)]
    lp_dense = [c for c in configs if c.method == "lp" and c.network == "dense"]
    for config in lp_dense[:-1]:
        fake_run(config)
    write_failure(tmp_path, "x1", lp_dense[-1].to_dict(), "ValueError: boom", "Traceback")
    status = grid_status(configs, tmp_path, profile)
    assert len(status) == 3 * 3 and status["runs"].sum() == len(configs)   # 3 arms x 3 networks
    cell = status[(status["arm"] == "lp") & (status["network"] == "dense")].iloc[0]
    assert (cell["runs"], cell["finished"], cell["failed"], cell["missing"]) == (len(lp_dense), len(lp_dense) - 1, 1, 0)
    assert cell["complete with"] == ("python -m reprolib sweep --profile smoke --only "
                                     "target=digits,method=lp,network=dense,kind=imp,level=0")
    line = summary_line(status, profile)
    assert line.startswith(f"{len(lp_dense) - 1} of {len(configs)} runs finished, 1 failed, "
                           f"{len(configs) - len(lp_dense)} missing; complete the grid with: make sweep PROFILE=smoke")
    for config in configs:
        fake_run(config)
    assert summary_line(grid_status(configs, tmp_path, profile), profile).endswith("the grid is complete")


def test_profiles_are_discovered_and_a_users_own_loads_by_path(tmp_path: Path, monkeypatch) -> None:
    assert {"paper-headline", "smoke", "paper"} <= set(profile_names())
    assert profile_names()[:3] == ["smoke", "embedded", "paper"]
    monkeypatch.setenv("REPROLIB_PROFILES", "")   # restored after the test
    mine = tmp_path / "my-study.yaml"
    mine.write_text((Path(__file__).parents[1] / "reprolib/profiles/smoke.yaml").read_text()
                    .replace("profile: smoke", "profile: my-study").replace("seeds: [1]", "seeds: [4]", 1))
    profile = load_profile(str(mine))
    assert profile.profile == "my-study" and profile.seeds == [4]
    assert load_profile("my-study").seeds == [4]              # registered: workers load it by name
    assert str(mine) in os.environ["REPROLIB_PROFILES"]
    wrong = tmp_path / "other.yaml"
    wrong.write_text(mine.read_text())
    with pytest.raises(ReprolibError, match="names profile 'my-study'; valid choices: 'other'"):
        load_profile(str(wrong))
    with pytest.raises(ReprolibError, match="does not exist"):
        load_profile(str(tmp_path / "none.yaml"))


NOTEBOOK = '''# %% tags=["parameters"]
profile = "smoke"

# %%
import os, time
from pathlib import Path
Path(os.environ["KERNEL_PID_FILE"]).write_text(str(os.getpid()))
time.sleep(120)
'''


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_notebooks_cleans_its_running_copy_and_kernel_on_sigterm_and_after_kill_9(tmp_path: Path, monkeypatch) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    (home / "notebooks").mkdir(parents=True)
    (home / ".reprolib-home").touch()
    (home / "notebooks" / "01_wait.py").write_text(NOTEBOOK)
    pid_file = tmp_path / "kernel.pid"
    env = {**os.environ, "REPROLIB_HOME": str(home), "KERNEL_PID_FILE": str(pid_file)}
    running = out / ".01_wait.running.ipynb"
    for signum in (signal.SIGTERM, signal.SIGKILL):
        pid_file.unlink(missing_ok=True)
        runner = subprocess.Popen([sys.executable, "-m", "reprolib", "notebooks", "--profile", "smoke", "--out",
                                   str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: pid_file.exists() and pid_file.read_text() and running.exists(), 120)
        kernel = int(pid_file.read_text())
        runner.send_signal(signum)
        runner.wait(timeout=30)
        _wait(lambda: not _alive(kernel), 15)                   # the kernel goes with it
        if signum == signal.SIGTERM:
            assert not running.exists()                         # removed on the way out
    assert running.exists()                                     # kill -9: nothing could run
    from reprolib.notebooks.runner import run_notebooks
    monkeypatch.setenv("REPROLIB_HOME", str(home))
    (home / "notebooks" / "01_wait.py").write_text(NOTEBOOK.split("# %%\nimport")[0])
    run_notebooks("smoke", out, verbose=False)                  # the next run removes the stale copy
    assert not running.exists() and (out / "01_wait.ipynb").exists()


def test_notebook_02_reads_the_saved_ledger_while_a_sweep_holds_the_folder(tmp_path, capsys) -> None:
    """A GPU profile's grid runs outside the notebooks: notebook 02 rebuilds the ledger under the
    folder's lock, and while a sweep holds it, shows the saved ledger instead of failing or writing."""
    import json
    import os
    import socket

    from reprolib.study.ledger import load_ledger, update_ledger
    from reprolib.sweep.lock import LOCK_NAME
    from reprolib.sweep.status import current_ledger
    from synthetic_study import write_synthetic_study

    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp",), seeds=(1,))
    saved = update_ledger(tmp_path)
    victim = sorted((tmp_path / "runs").glob("*.json"))[0]
    victim.rename(victim.with_name(f"{victim.stem}.bad.json"))   # since then a run was found damaged
    lock = tmp_path / "runs" / LOCK_NAME
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now",
                                "what": "the sweep command"}))
    before = (tmp_path / "ledger.csv").read_bytes()
    assert len(current_ledger(tmp_path)) == len(saved) and (tmp_path / "ledger.csv").read_bytes() == before
    assert "is in use by the sweep command" in capsys.readouterr().out
    lock.unlink()
    assert len(current_ledger(tmp_path)) == len(saved) - 1 == len(load_ledger(tmp_path))
