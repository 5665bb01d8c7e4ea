"""reprolib.paths: results resolve from $REPROLIB_HOME, the checkout you stand in, or the cwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprolib import paths
from reprolib.config import load_profile
from reprolib.errors import ReprolibError

REPO = Path(__file__).resolve().parent.parent


def test_this_session_resolves_every_profile_path_outside_the_checkout(workbook_home):
    profile = load_profile("smoke")
    for key in ("artifacts", "figures", "data_root"):
        assert profile.path(key).is_relative_to(workbook_home)
        assert not profile.path(key).is_relative_to(REPO)


def test_home_prefers_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(paths.HOME_ENV, "elsewhere")          # relative: taken from the cwd
    assert paths.home() == tmp_path / "elsewhere"
    assert load_profile("embedded").path("artifacts") == tmp_path / "elsewhere" / "artifacts" / "embedded"


def test_home_is_the_checkout_or_marked_folder_above_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.HOME_ENV)
    monkeypatch.chdir(REPO / "notebooks")                      # a kernel started in notebooks/
    assert paths.home() == REPO
    workbook = tmp_path / "study"
    (workbook / "notebooks" / "executed").mkdir(parents=True)
    (workbook / paths.HOME_MARKER).touch()
    monkeypatch.chdir(workbook / "notebooks" / "executed")
    assert paths.home() == workbook
    assert paths.executed_notebooks_dir("smoke") == workbook / "notebooks" / "executed" / "smoke"
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)                                   # no workbook above: the cwd itself
    assert paths.home() == plain
    assert load_profile("smoke", artifacts="/abs/a").path("artifacts") == Path("/abs/a")


def test_named_locations_under_an_artifacts_folder(tmp_path):
    a = tmp_path
    assert paths.ticket_dir(a, "imp", 4) == a / "tickets" / "imp" / "level_04"
    assert paths.ticket_of(a / "tickets" / "magnitude" / "level_08") == ("magnitude", 8)
    assert paths.runs_dir(a) == a / "runs" and paths.run_state_file(a / "runs", "x1") == a / "runs" / "x1.npz"
    assert paths.ledger_file(a).name == "ledger.csv" and paths.tickets_table_file(a).name == "tickets.csv"
    assert paths.reprogrammer_runs_dir(a) == a / "reprogrammer" / "runs"
    assert paths.encoder_file(a) == a / "reprogrammer" / "encoder.pth"
    assert paths.torch_hub_dir(a) == a / "torch_hub" and paths.open_clip_dir(a) == a / "open_clip"
    for kind, level in (("imp", 2), ("imp", 0), ("random", 8)):
        paths.ticket_dir(a, kind, level).mkdir(parents=True)
        (paths.ticket_dir(a, kind, level) / "sparsity.json").write_text("{}")
    paths.ticket_dir(a, "imp", 4).mkdir()                    # incomplete: no sparsity.json yet
    assert [paths.ticket_of(d) for d in paths.ticket_dirs(a)] == [("imp", 0), ("imp", 2), ("random", 8)]
    with pytest.raises(ReprolibError, match="is not a ticket folder"):
        paths.ticket_of(a / "tickets" / "imp")


def test_profile_files_are_package_data_and_bad_path_keys_are_one_line():
    assert paths.profile_file("smoke") == REPO / "reprolib" / "profiles" / "smoke.yaml"
    with pytest.raises(ReprolibError, match="unknown profile path 'artefacts'; valid choices: artifacts, figures"):
        load_profile("smoke").path("artefacts")
