"""Choosing a study without editing a notebook, and what a study without results says to run."""

from __future__ import annotations

import pytest

from reprolib.config import load_profile, profile_names
from reprolib.errors import ReprolibError
from reprolib.notebooks.runner import resolve_parameters
from reprolib.notebooks.studies import DEFAULT_PROFILE, PROFILE_ENV, chosen_profile, results_command


def test_a_notebook_opens_the_study_named_by_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert chosen_profile() == DEFAULT_PROFILE == "embedded"
    assert resolve_parameters(profile=None).profile == "embedded"
    monkeypatch.setenv(PROFILE_ENV, "imagenet-lite")   # what `make lab PROFILE=imagenet-lite` sets
    assert resolve_parameters(profile=None, seeds=None).profile == "imagenet-lite"
    assert resolve_parameters(profile="smoke").profile == "smoke"   # papermill's profile wins
    monkeypatch.setenv(PROFILE_ENV, "imagenet-lit")
    with pytest.raises(ReprolibError, match="unknown profile 'imagenet-lit'; valid choices: .*imagenet-lite"):
        resolve_parameters(profile=None)


def test_make_lab_passes_the_profile_to_the_notebooks() -> None:
    import os
    import subprocess
    from pathlib import Path

    checkout = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "lab", "PROFILE=imagenet-lite"], cwd=checkout, capture_output=True,
                         text=True).stdout
    assert f"{PROFILE_ENV}=imagenet-lite" in dry.splitlines()[-1] and "jupyter lab" in dry.splitlines()[-1]
    plain = subprocess.run(["make", "-n", "lab"], cwd=checkout, capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PROFILE"}).stdout
    assert PROFILE_ENV not in plain


def test_the_advice_follows_where_the_profile_trains() -> None:
    """GPU profiles train with `make sweep` (notebook 02 never trains them); offline ones in the notebooks."""
    paper, embedded = load_profile("paper"), load_profile("embedded")
    assert not paper.trains_in_notebooks and embedded.trains_in_notebooks
    assert results_command(paper).startswith("`make sweep PROFILE=paper`")
    assert "then `make figures PROFILE=paper`" in results_command(paper)
    assert results_command(embedded) == "`make figures PROFILE=embedded` (it trains this study)"
    custom = load_profile("smoke", trains_in_notebooks=False)
    assert "make sweep PROFILE=smoke" in results_command(custom)


def test_a_misspelled_profile_is_one_line_in_a_notebook_cell() -> None:
    """In a real kernel: IPython shows a ReprolibError as its one line, not a traceback."""
    import nbformat
    from nbclient import NotebookClient

    from reprolib.notebooks.runner import kernel_manager_class

    cell = nbformat.v4.new_code_cell("from reprolib.notebooks.runner import setup\nP = setup(profile='embeded')")
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(notebook, kernel_name="python3", allow_errors=True, timeout=120,
                   kernel_manager_class=kernel_manager_class()).execute()
    (error,) = [o for o in notebook.cells[0].outputs if o["output_type"] == "error"]
    assert error["traceback"] == [f"ReprolibError: unknown profile 'embeded'; valid choices: {', '.join(profile_names())}"]
