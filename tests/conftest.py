"""Shared fixtures, and the rule that no test writes into the checkout's results.

Before any test is collected, `REPROLIB_HOME` points at a fresh temporary workbook, so every
profile path (`artifacts/<profile>`, `figures/<profile>`) and every CLI subprocess resolve
there, never into this checkout. Its `data` is a link to the checkout's `data/` (when it
exists) so the offline caches that `make data` built are read, not rebuilt.

`results_untouched` (session, autouse) then fails the session if anything under the
checkout's `artifacts/` or `figures/` was created, changed or removed, or if an existing
file under `data/` was changed or removed (new files there can only be the caches that
`make data` builds, which a test on a fresh clone may build first). The folders of the
profiles that `make test`'s other lane writes while this session runs (LANE_PROFILES: the
notebooks under nbval, the dry run, the Slurm slice; git ignores them) are not watched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from synthetic_study import write_synthetic_study

REPO = Path(__file__).resolve().parent.parent
STRICT_DIRS = ("artifacts", "figures")    # no file created, changed or removed
READ_DIRS = ("data",)                     # no existing file changed or removed
LANE_PROFILES = ("smoke", "smoke-lite", "paper-dryrun")   # make test's other lane writes these
_SAVED_HOME = "_reprolib_saved_home"


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="reprolib-test-home-"))
    if (REPO / "data").is_dir():
        (home / "data").symlink_to((REPO / "data").resolve(), target_is_directory=True)
    setattr(config, _SAVED_HOME, os.environ.get("REPROLIB_HOME"))
    os.environ["REPROLIB_HOME"] = str(home)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.pop("REPROLIB_HOME", None)
    saved = getattr(config, _SAVED_HOME, None)
    if saved is not None:
        os.environ["REPROLIB_HOME"] = saved
    if home and Path(home).name.startswith("reprolib-test-home-"):
        shutil.rmtree(home, ignore_errors=True)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under `root` (empty when it does not exist)."""
    out = {}
    for folder, subfolders, files in os.walk(root):
        if Path(folder) == root:
            subfolders[:] = [d for d in subfolders if d not in LANE_PROFILES]
        for name in files:
            path = Path(folder, name)
            try:
                stat = path.stat()
            except FileNotFoundError:   # a file vanishing mid-walk shows up in the comparison
                continue
            out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
            new_files_allowed: bool) -> list[str]:
    """Human-readable differences between two snapshots."""
    found = [f"removed {p}" for p in sorted(set(before) - set(after))]
    found += [f"modified {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    if not new_files_allowed:
        found += [f"created {p}" for p in sorted(set(after) - set(before))]
    return found


@pytest.fixture(scope="session", autouse=True)
def results_untouched():
    """Fail the session if a test wrote into the checkout's artifacts/ or figures/ (or changed data/)."""
    guarded = {name: False for name in STRICT_DIRS} | {name: True for name in READ_DIRS}
    before = {name: snapshot(REPO / name) for name in guarded}
    yield
    problems = [f"{name}/: {change}" for name, new_ok in guarded.items()
                for change in changes(before[name], snapshot(REPO / name), new_ok)]
    assert not problems, "tests wrote into the checkout: " + "; ".join(problems[:10])


@pytest.fixture
def workbook_home() -> Path:
    """The temporary workbook root of this test session (`$REPROLIB_HOME`)."""
    return Path(os.environ["REPROLIB_HOME"])


@pytest.fixture
def smoke_profile(tmp_path: Path):
    """The smoke profile with its artifacts and figures in this test's own temporary folder."""
    from reprolib.config import load_profile

    return load_profile("smoke", artifacts=str(tmp_path / "artifacts"), figures=str(tmp_path / "figures"))


@pytest.fixture(scope="session")
def smoke_upstream():
    """The smoke profile with its dense upstream model made (tests/smoke_runs.py)."""
    from smoke_runs import smoke_with_dense_model

    return smoke_with_dense_model()


@pytest.fixture
def one_thread():
    """One torch thread for the test: on a shared, oversubscribed machine spinning threads are far slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory) -> tuple[Path, "pandas.DataFrame"]:  # noqa: F821
    """(artifacts, ledger) of the default synthetic study (every arm, levels 0/2/4, two targets)."""
    from reprolib.study.ledger import build_ledger

    artifacts = tmp_path_factory.mktemp("synthetic_study")
    write_synthetic_study(artifacts)
    return artifacts, build_ledger(artifacts)


@pytest.fixture(scope="module")
def lp_vp_ledger(tmp_path_factory):
    """The ledger of a synthetic study with only LP and VP-ILM (what the paper's claims compare),
    four seeds with seeded training noise (1 point of accuracy) so the claims' intervals have width."""
    from reprolib.study.ledger import build_ledger

    artifacts = tmp_path_factory.mktemp("lp_vp_study")
    write_synthetic_study(artifacts, arms=("lp", "vp/ilm"), seeds=(1, 2, 3, 4), noise=0.01)
    return build_ledger(artifacts)


@pytest.fixture(autouse=True)
def _registered_profiles_stay_in_their_test():
    """A command run in a test registers its --profile file in REPROLIB_PROFILES (config.register_profile,
    so workers find it); put the variable back, so a later test's profile list holds no stranger's file."""
    from reprolib.config import PROFILES_ENV

    before = os.environ.get(PROFILES_ENV)
    yield
    if before is None:
        os.environ.pop(PROFILES_ENV, None)
    else:
        os.environ[PROFILES_ENV] = before
