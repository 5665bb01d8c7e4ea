"""The papermill runner's executed copies: no jupytext pairing, nothing that changes between reruns."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from reprolib.errors import ReprolibError
from reprolib.notebooks.runner import (HASH_KEY, LIVE_WIDGETS, WIDGET_PLACEHOLDER, WIDGET_VIEW, clean_executed,
                                kernel_manager_class, notebook_parameters)


def _executed(run: int):
    """A notebook as papermill leaves it; `run` changes every volatile field."""
    widget = new_output("display_data", data={WIDGET_VIEW: {"model_id": f"m{run}", "version_major": 2},
                                              "text/plain": f"VBox(children=(Dropdown(id={run}),))"})
    cells = [new_markdown_cell("# title"), new_code_cell("print(1)", outputs=[new_output("stream", text="1\n")]),
             new_code_cell("display(widgets)", outputs=[widget])]
    for cell in cells:
        cell["id"] = f"random{run}{cell['id']}"
        cell.metadata["execution"] = {"iopub.status.busy": f"2026-12-0{run}T10:00:00Z"}
        cell.metadata["papermill"] = {"duration": 0.1 * run, "status": "completed"}
    notebook = new_notebook(cells=cells)
    notebook.metadata.update({
        "jupytext": {"formats": "py:percent"}, "widgets": {"state": {f"m{run}": {}}},
        "papermill": {"duration": run, "start_time": f"t{run}", "input_path": f"/tmp/{run}.ipynb",
                      "parameters": {"profile": "smoke"}},
        HASH_KEY: "abc"})
    return notebook


def test_two_runs_with_the_same_numbers_write_the_same_bytes() -> None:
    first, second = _executed(1), _executed(2)
    clean_executed(first)
    clean_executed(second)
    assert nbformat.writes(first) == nbformat.writes(second)
    assert "jupytext" not in first.metadata and "widgets" not in first.metadata
    assert first.metadata["papermill"] == {"parameters": {"profile": "smoke"}} and first.metadata[HASH_KEY] == "abc"
    assert [c["id"] for c in first.cells] == ["cell-00", "cell-01", "cell-02"]
    assert first.cells[1].outputs[0]["text"] == "1\n"
    assert first.cells[2].outputs[0]["data"] == {"text/plain": WIDGET_PLACEHOLDER}
    assert all("execution" not in c.metadata and "papermill" not in c.metadata for c in first.cells)
    nbformat.validate(first)


def test_kernels_run_on_ipc_sockets() -> None:
    assert kernel_manager_class()().transport == "ipc"


def test_kernel_shutdown_sends_no_interrupt() -> None:
    """jupyter_client SIGINTs a kernel before shutting it down, which an idle ipykernel logs as
    an ERROR on the terminal of `make figures`; our manager skips that one interrupt only."""
    import asyncio
    import signal

    manager = kernel_manager_class()(kernel_name="python3")
    sent, real = [], manager._async_signal_kernel

    async def recorded(signum):
        sent.append(signum)
        await real(signum)

    manager._async_signal_kernel = recorded

    async def start_interrupt_shutdown():
        await manager.start_kernel()
        await manager._async_interrupt_kernel()   # a user's interrupt still reaches the kernel
        await manager.shutdown_kernel()

    asyncio.run(start_interrupt_shutdown())
    assert sent.count(signal.SIGINT) == 1 and not manager.has_kernel


def test_headless_runs_get_the_profile_and_no_live_widgets() -> None:
    """Every other parameter keeps its default, None, which setup() fills in from the profile."""
    assert notebook_parameters({"profile", "seeds", LIVE_WIDGETS}, "smoke") == {"profile": "smoke", LIVE_WIDGETS: False}
    assert notebook_parameters({"profile"}, "/home/me/mine.yaml") == {"profile": "/home/me/mine.yaml"}
    with pytest.raises(ReprolibError, match="03_x's parameters cell does not set profile"):
        notebook_parameters({"seeds"}, "smoke", "03_x")


def test_a_notebook_whose_results_are_gone_runs_again(tmp_path, monkeypatch) -> None:
    """A fresh clone holds the committed executed notebooks but no artifacts: notebook 01 reads
    nothing, so only the hash of what it made (the tickets) tells that it must run."""
    from reprolib import paths
    from reprolib.config import load_profile
    from reprolib.notebooks.plan import inputs_hash, read_spec

    monkeypatch.setenv(paths.HOME_ENV, str(Path(__file__).resolve().parents[1]))   # the checkout's notebooks
    profile = load_profile("smoke", artifacts=str(tmp_path), figures=str(tmp_path / "figures"))
    yaml_file = paths.profile_file("smoke")
    specs = {n: read_spec(n) for n in ("01_upstream_and_tickets", "03_accuracy_vs_sparsity")}
    before = {n: inputs_hash(spec, yaml_file, profile) for n, spec in specs.items()}
    report = paths.ticket_dir(tmp_path, "imp", 0) / "sparsity.json"
    report.parent.mkdir(parents=True)
    report.write_text("{}")
    after = {n: inputs_hash(spec, yaml_file, profile) for n, spec in specs.items()}
    assert after["01_upstream_and_tickets"] != before["01_upstream_and_tickets"]
    assert after["03_accuracy_vs_sparsity"] == before["03_accuracy_vs_sparsity"]


def test_shipped_results_keep_the_training_notebooks_unless_forced(tmp_path, monkeypatch) -> None:
    """A checkout with a study's ledger but none of its run records does not retrain it."""
    from reprolib import paths
    from reprolib.config import load_profile
    from reprolib.notebooks.plan import NotebookSpec, shipped_results
    from reprolib.notebooks.runner import execute

    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    profile = load_profile("smoke")
    artifacts = profile.path("artifacts")
    assert artifacts.is_relative_to(tmp_path) and not shipped_results(profile)
    artifacts.mkdir(parents=True)
    paths.ledger_file(artifacts).write_text("id,target\n")
    out = tmp_path / "executed"
    out.mkdir()
    for name in ("01_upstream_and_tickets", "02_transfer_sweep"):
        (out / f"{name}.ipynb").write_text("{}")
        spec = NotebookSpec(name, reads=["tickets"], writes=["ledger"], trains=True)   # as 01 and 02 declare
        assert shipped_results(profile) and execute(name, "smoke", out, spec=spec) == ("shipped", 0.0)
    runs = paths.runs_dir(artifacts)
    runs.mkdir()
    (runs / "abc.json").write_text("{}")
    assert not shipped_results(profile)   # run records here: the usual input hashes decide


def test_git_ships_exactly_the_shipped_files() -> None:
    import shutil
    import subprocess

    from reprolib.notebooks.plan import SHIPPED_FILES

    checkout = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (checkout / ".git").exists():
        pytest.skip("not a git checkout")
    shipped = [f.replace("*", "a") for f in SHIPPED_FILES]
    kept_out = ["runs/a.json", "runs/a.npz", "tickets/imp/level_00/model.pth", "features/a.pt",
                "reprogrammer/encoder.pth", "reprogrammer/runs/a.npz"]
    for study in ("embedded", "imagenet-lite", "smoke"):
        for name in shipped + kept_out:
            ignored = subprocess.run(["git", "check-ignore", "-q", f"artifacts/{study}/{name}"], cwd=checkout).returncode == 0
            assert ignored == (study == "smoke" or name in kept_out), f"artifacts/{study}/{name}"


def test_notebook_02_run_by_hand_on_shipped_results_reports_them_and_writes_nothing(tmp_path, monkeypatch) -> None:
    """A fresh clone's Run All on notebook 02 (default parameters, as papermill runs it): the study's
    ledger and tickets table shipped without their runs and tickets; the notebook reports the ledger
    (the grid complete) and trains, rewrites and creates nothing. `retrain = True` would train."""
    import shutil

    from synthetic_study import write_synthetic_study

    from reprolib import paths
    from reprolib.config import load_profile
    from reprolib.notebooks.runner import execute
    from reprolib.study.ledger import update_ledger

    checkout = Path(__file__).resolve().parents[1]
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(checkout))   # the kernel imports this checkout's reprolib
    (tmp_path / "notebooks").mkdir()
    shutil.copy(checkout / "notebooks" / "02_transfer_sweep.py", tmp_path / "notebooks")
    profile = load_profile("smoke")
    artifacts = profile.path("artifacts")
    write_synthetic_study(artifacts, targets=tuple(profile.targets), arms=tuple(profile.methods),
                          levels=(0, *profile.levels[1:]), n_shots=tuple(profile.n_shots), seeds=(1,))
    update_ledger(artifacts)
    shutil.rmtree(paths.runs_dir(artifacts))
    shutil.rmtree(artifacts / "tickets")
    before = {p: p.is_file() and p.read_bytes() for p in artifacts.rglob("*")}
    out = tmp_path / "out"
    out.mkdir()
    assert execute("02_transfer_sweep", "smoke", out)[0] == "executed"   # not forced: no RETRAIN injected
    assert {p: p.is_file() and p.read_bytes() for p in artifacts.rglob("*")} == before
    text = nbformat.writes(nbformat.read(out / "02_transfer_sweep.ipynb", as_version=4))
    assert "the shipped results of smoke" in text and "(retrain = True trains the grid here)" in text


def _shipped_checkout(home: Path, study: str) -> Path:
    """`home` as a fresh clone holds `study`: exactly the files git ships under artifacts/<study>/."""
    import shutil

    from tracked_files import copy_tracked

    checkout = copy_tracked(home, f"artifacts/{study}")
    shutil.copytree(checkout / "notebooks", home / "notebooks", ignore=shutil.ignore_patterns("executed"))
    return checkout


@pytest.mark.parametrize("name, study, figures", [
    ("01_upstream_and_tickets", "embedded", ["tickets.csv", "upstream_per_level.png"]),
    ("08_reprogrammer", "embedded", ["reprogrammer.csv", "reprogrammer.png"]),
    ("08_reprogrammer", "imagenet-lite", ["reprogrammer.csv", "reprogrammer.png"])])
def test_a_training_notebook_run_by_hand_in_a_fresh_clone_reports_the_shipped_study(name, study, figures, tmp_path,
                                                                                      monkeypatch) -> None:
    """Run All of a training notebook with its default parameters in a fresh clone of a shipped
    study (its tables and Reprogrammer records, without tickets, run records or logits): it trains
    and rewrites nothing (every shipped record verifies: a stale one would be set aside), and draws
    the shipped figures and tables again, byte for byte."""
    from reprolib import paths
    from reprolib.notebooks.runner import execute

    checkout = _shipped_checkout(tmp_path, study)
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(checkout))   # the kernel imports this checkout's reprolib
    artifacts = tmp_path / "artifacts" / study
    before = {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    out.mkdir()
    assert execute(name, study, out)[0] == "executed"   # not forced: no RETRAIN injected
    assert {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()} == before
    for figure in figures:
        assert (tmp_path / "figures" / study / figure).read_bytes() == \
            (checkout / "figures" / study / figure).read_bytes(), figure
    text = nbformat.writes(nbformat.read(out / f"{name}.ipynb", as_version=4))
    assert "(retrain = True " in text
