"""A fresh clone is left as it came: `make figures` and every notebook's Run All keep git clean.

The clone is this checkout's tracked files (the working tree, so uncommitted edits are tested
too) committed into a new repository, with the checkout's prepared data linked in as `make data`
leaves it (ignored by git). Then, as a newcomer would:

- `python -m reprolib notebooks --profile S --out notebooks/executed/S` (what `make figures` runs)
  for both shipped studies: every notebook is up to date or stands as shipped, nothing is redrawn;
- every notebook of the default study run by hand with its default parameters (papermill, as
  JupyterLab's Run All), in the order the runner plans: the training notebooks report the shipped
  results, the others redraw the shipped figures and tables byte for byte.

After each, `git status --porcelain` is empty.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tracked_files import CHECKOUT, copy_tracked

from reprolib import paths
from reprolib.notebooks.plan import plan, read_spec
from reprolib.notebooks.runner import execute, names, run_notebooks

STUDIES = ("embedded", "imagenet-lite")


def _git(clone: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if not (CHECKOUT / "data").is_dir():
        pytest.skip("no prepared data here (make data)")
    clone = tmp_path_factory.mktemp("fresh_clone")
    copy_tracked(clone)
    _git(clone, "init", "-q")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-q", "-m", "clone")
    (clone / "data").symlink_to((CHECKOUT / "data").resolve())   # make data's output, ignored by git
    return clone


@pytest.fixture
def in_clone(clone, monkeypatch) -> Path:
    monkeypatch.setenv(paths.HOME_ENV, str(clone))
    monkeypatch.setenv("PYTHONPATH", str(clone))   # the kernels import the clone's reprolib
    monkeypatch.delenv("REPROLIB_PROFILE", raising=False)
    return clone


def test_make_figures_in_a_fresh_clone_redraws_nothing(in_clone) -> None:
    for study in STUDIES:
        results = run_notebooks(study, in_clone / "notebooks" / "executed" / study, verbose=False)
        assert {status for status, _ in results.values()} <= {"unchanged", "shipped"}, (study, results)
    assert _git(in_clone, "status", "--porcelain") == ""


def test_run_all_of_every_notebook_in_a_fresh_clone_keeps_git_clean(in_clone, tmp_path) -> None:
    for spec in plan([read_spec(n) for n in names()]):   # writers before readers, as make figures runs them
        assert execute(spec.name, "embedded", tmp_path, spec=spec)[0] == "executed"   # not forced
        assert _git(in_clone, "status", "--porcelain") == "", spec.name
