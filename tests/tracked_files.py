"""Copies of this checkout's tracked files, as a fresh clone would hold them (tests of what ships)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]


def copy_tracked(dest: Path, under: str = ".") -> Path:
    """Copy the files git tracks under `under` (the working tree's versions: uncommitted edits are
    tested too; a file deleted but not yet committed is left out) into `dest`; returns the checkout.
    Skips the test where this is not a git checkout."""
    if shutil.which("git") is None or not (CHECKOUT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "-z", under], cwd=CHECKOUT, check=True, capture_output=True,
                             text=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (CHECKOUT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CHECKOUT / name, dest / name)
    return CHECKOUT
