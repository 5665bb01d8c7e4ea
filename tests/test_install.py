"""`pip install .` (not editable) works from another folder, and writes nothing into the install.

The package is built from a copy of the sources (so no build/ or egg-info lands in the
checkout) into a temporary `--target` folder, offline, then used from a different working
directory with only that folder on PYTHONPATH. Profiles and published tables must come
along as package data; results must land under the working directory or $REPROLIB_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Run in the installed copy: where things resolve, and what a study's first writes create.
PROBE = """
import json, reprolib, reprolib.study.published
from reprolib.config import load_profile
from reprolib.study.ledger import update_ledger
from reprolib.notebooks.runner import setup
profile = setup(profile="smoke")                        # the notebooks' first cell: makes figures/<profile>
update_ledger(profile.path("artifacts"))                # an empty ledger + tickets table
print(json.dumps({"package": reprolib.__file__, "artifacts": str(profile.path("artifacts")),
                  "figures": str(profile.path("figures")), "data_root": str(profile.path("data_root")),
                  "published": reprolib.study.published.names()}))
"""


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A non-editable install of this checkout in a temporary --target folder."""
    work = tmp_path_factory.mktemp("install")
    source, target = work / "source", work / "site"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "reprolib", source / "reprolib", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return target


def _run(installed: Path, cwd: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REPROLIB_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(installed), PYTHONDONTWRITEBYTECODE="1")
    if home is not None:
        env["REPROLIB_HOME"] = str(home)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_install_carries_profiles_and_published_tables_as_package_data(installed):
    files = _files(installed / "reprolib")
    assert {"profiles/smoke.yaml", "profiles/embedded.yaml", "profiles/paper.yaml"} <= files
    assert any(f.startswith("published/") and f.endswith(".csv") for f in files)
    assert not any(f.startswith("bench") for f in files), "benchmarks are not part of the package"


@pytest.mark.parametrize("use_home", [False, True], ids=["cwd", "REPROLIB_HOME"])
def test_an_installed_package_works_from_another_folder(installed, tmp_path, use_home):
    cwd, home = tmp_path / "where_i_stand", tmp_path / "my_workbook"
    cwd.mkdir()
    before = _files(installed)
    result = _run(installed, cwd, "-c", PROBE, home=home if use_home else None)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    root = home if use_home else cwd
    assert Path(seen["package"]).is_relative_to(installed), "the installed copy, not the checkout, was imported"
    assert seen["artifacts"] == str(root / "artifacts" / "smoke")
    assert seen["figures"] == str(root / "figures" / "smoke")
    assert seen["data_root"] == str(root / "data")
    assert seen["published"], "published tables are readable from the install"
    assert (root / "artifacts" / "smoke" / "ledger.csv").is_file() and (root / "figures" / "smoke").is_dir()
    assert _files(installed) == before, "nothing may be written into the installed package"


def test_the_installed_command_line_answers_from_another_folder(installed, tmp_path):
    result = _run(installed, tmp_path, "-m", "reprolib", "data", "--help")
    assert result.returncode == 0, result.stderr
    assert "--prepare" in result.stdout
    bad = _run(installed, tmp_path, "-m", "reprolib", "ledger", "--profile", "fast")
    assert bad.returncode == 2 and "unknown profile 'fast'; valid choices: smoke, embedded, paper" in bad.stderr
    assert list(tmp_path.iterdir()) == [], "a refused command writes nothing"
