"""The declared environment is consistent, and importing the package stays cheap."""

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        name, _, version = line.partition("==")
        pins[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return pins


def test_pyproject_and_environment_yml_declare_the_same_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(project) == _pins(pip_section)
    assert all("==" in dep for dep in project), "every direct dependency is pinned exactly"


def test_lock_file_agrees_with_pyproject():
    project = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    lock = _pins([l for l in (ROOT / "requirements.lock").read_text().splitlines() if "==" in l])
    for name, version in project.items():
        assert lock.get(name) == version, f"{name}: pyproject {version}, lock {lock.get(name)}"


def test_import_is_fast_and_light():
    code = (
        "import sys, time; t = time.perf_counter(); import reprolib; "
        "print(time.perf_counter() - t); print('torch' in sys.modules)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed, torch_loaded = out.stdout.split()
    assert torch_loaded == "False", "import reprolib must not import torch"
    # Not a timing test: the real guard is that no heavy module is imported (above).
    assert float(elapsed) < time.perf_counter() - start + 1


def test_package_data_covers_every_data_file_of_the_package():
    # A file pyproject does not list is missing from `pip install .` (tests/test_install.py installs it).
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["reprolib"]
    package = ROOT / "reprolib"
    data = [p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert data, "the profiles and published tables are package data"
    unlisted = [str(p.relative_to(package)) for p in data if not any(p.relative_to(package).match(g) for g in patterns)]
    assert not unlisted, f"add to [tool.setuptools.package-data]: {unlisted}"
