"""docs/slurm.md: its commands run as written, and the figures it quotes are the dry run's.

Every `python -m reprolib ... --dry-run` line of its bash blocks runs here (on a machine without
Slurm, as the docs' own dry runs would: the cluster's checks are tested against a real Slurm in
tests/slurm/); every `make` line is a target and variables the Makefile knows (`make -n`); the
local cluster's commands are the script's. The runs the recipes start are run by `make test`
elsewhere: the paper-dryrun grid by the notebooks (test-dryrun), a Slurm slice by test-slurm.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from reprolib.sweep import cluster

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "slurm.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def _dry_runs() -> list[str]:
    return [c for c in _commands() if c.startswith("python -m reprolib ") and "--dry-run" in c]


def _run(command: str, capsys, monkeypatch) -> str:
    from reprolib.cli import main

    monkeypatch.setattr(cluster, "available", lambda: False)
    assert main(shlex.split(command)[3:]) == 0, command
    return capsys.readouterr().out


def test_the_docs_have_a_dry_run_for_every_recipe() -> None:
    profiles = {re.search(r"--profile (\S+)", c).group(1) for c in _dry_runs()}
    assert profiles == {"paper-dryrun", "paper-headline", "paper"}
    assert any("--executor slurm" in c and "paper-dryrun" in c for c in _dry_runs())


@pytest.mark.parametrize("command", _dry_runs())
def test_each_dry_run_of_the_docs_runs(command: str, capsys, monkeypatch) -> None:
    out = _run(command, capsys, monkeypatch)
    assert re.search(r"^\d+ runs$", out, re.M)


def test_the_figures_the_docs_quote_are_the_dry_run_s(capsys, monkeypatch) -> None:
    text = " ".join(DOC.read_text().split())
    quoted = re.search(r"the paper grid's (\d+) runs go out as (\d+) jobs in (\d+) array", text).groups()
    slurm = next(c for c in _dry_runs() if "--profile paper " in c + " " and "--executor slurm" in c)
    planned = re.search(r"^slurm: (\d+) runs .*in (\d+) jobs, (\d+) array", _run(slurm, capsys, monkeypatch), re.M)
    assert planned.groups() == quoted
    for profile, phrase in (("paper-dryrun", "the 36 runs of the dry-run grid"), ("paper-headline", "the 144 runs")):
        assert phrase in text, profile
        count = re.search(r"(\d+) runs", phrase).group(1)
        assert f"\n{count} runs\n" in _run(f"python -m reprolib sweep --profile {profile} --dry-run", capsys, monkeypatch)


def test_each_make_line_is_a_target_the_makefile_knows() -> None:
    """`make sweep` prepares the profile's data and runs the sweep; a GPU profile's never builds the
    offline embedded sets (`make data`: Debian's Fashion-MNIST and the rest)."""
    for command in (c for c in _commands() if c.startswith("make ")):
        args = shlex.split(command)[1:]
        shown = subprocess.run(["make", "-n", "-o", ".venv/.setup-done", *args], cwd=REPO, capture_output=True,
                               text=True)
        assert shown.returncode == 0, (command, shown.stderr)
        if args[0] == "sweep":
            profile = next(a.split("=", 1)[1] for a in args if a.startswith("PROFILE="))
            out = shown.stdout.replace(".venv/bin/", "")
            assert f"python -m reprolib data --prepare --profile {profile}\n" in out
            assert f"python -m reprolib sweep --profile {profile} " in out
            assert ("dataset-fashion-mnist" in out) is False, command
    local = [c for c in _commands() if "local_slurm.sh" in c]
    assert local and all(shlex.split(c)[1] == "tests/slurm/local_slurm.sh" for c in local)
    usage = (REPO / "tests" / "slurm" / "local_slurm.sh").read_text()
    assert all(f"\n    {shlex.split(c)[2]}) cmd_" in usage for c in local)
