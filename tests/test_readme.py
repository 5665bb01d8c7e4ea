"""The README's Python blocks run as written (the public API is what the README shows).

Each ```python block runs in a fresh interpreter, in a temporary folder, with this session's
temporary REPROLIB_HOME (see conftest.py) and the offline data. A block preceded by the
line `<!-- no-test: REASON -->` is skipped (for blocks that need a GPU or the internet);
there is none today.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path



README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- no-test: [^>]*-->\s*\n)?```python\n(.*?)```", re.S)


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    """(code, skip reason or None) of every ```python block, in order."""
    return [(m.group(2), m.group(1).strip()[len("<!-- no-test: "):-len("-->")].strip() if m.group(1) else None)
            for m in BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text())


def test_the_extractor_reads_blocks_and_skip_marks():
    text = "x\n```python\na = 1\n```\n<!-- no-test: needs a GPU -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [("a = 1\n", None), ("b = 2\n", "needs a GPU")]
    assert len(BLOCKS) >= 2, "the README shows the library's Python API"


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_readme_block_1_profile_paths_and_data(tmp_path, workbook_home):
    code, skip = BLOCKS[0]
    assert skip is None
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    artifacts, shapes = result.stdout.strip().splitlines()
    assert artifacts == str(workbook_home / "artifacts" / "smoke")
    assert shapes == "(50, 1, 8, 8) [5, 5, 5, 5, 5, 5, 5, 5, 5, 5]"


def test_readme_block_2_loads_a_torch_prune_ticket(tmp_path):
    code, skip = BLOCKS[1]
    assert skip is None
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]
    # resnet18 has 20 convs; all but the stem are pruned globally to 20% kept.
    assert result.stdout.strip() == "19 masked weights, 0.200 kept"


def test_every_readme_block_is_covered():
    # A new block needs its own test above (with the values it should print), or a no-test mark.
    assert len(BLOCKS) == 2, f"README has {len(BLOCKS)} python blocks; add a test for each new one"
