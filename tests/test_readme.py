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


def test_readme_block_1_runs_one_experiment_from_a_cell(tmp_path, workbook_home):
    import json

    code, skip = BLOCKS[0]
    assert skip is None and "run_transfer(config)" in code
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    assert result.stdout.strip().splitlines()[-2:] == ["vp 50 True True", "True"]   # 5 shots x 10 digits
    records = list((workbook_home / "artifacts" / "smoke" / "runs").glob("*.json"))
    matching = [json.loads(r.read_text()) for r in records]
    matching = [r for r in matching if r["config"]["method"] == "vp" and r["config"]["n_shot"] == 5
                and r["config"]["network"] == "dense" and r["config"]["seed"] == 1]
    assert matching and 0.0 <= matching[0]["metrics"]["accuracy"] <= 1.0


def test_readme_block_2_profile_paths_and_data(tmp_path, workbook_home):
    code, skip = BLOCKS[1]
    assert skip is None
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    artifacts, shapes = result.stdout.strip().splitlines()
    assert artifacts == str(workbook_home / "artifacts" / "smoke")
    assert shapes == "(50, 1, 8, 8) [5, 5, 5, 5, 5, 5, 5, 5, 5, 5]"


def test_readme_block_3_loads_a_torch_prune_ticket(tmp_path):
    code, skip = BLOCKS[2]
    assert skip is None
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]
    # resnet18 has 20 convs; all but the stem are pruned globally to 20% kept.
    assert result.stdout.strip() == "19 masked weights, 0.200 kept"


def test_every_readme_block_is_covered():
    # A new block needs its own test above (with the values it should print), or a no-test mark.
    assert len(BLOCKS) == 3, f"README has {len(BLOCKS)} python blocks; add a test for each new one"


def test_the_readme_starts_with_the_newcomers_path_and_tells_no_history():
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:4] == ["Start here: look, reproduce, scale", "Scale: GPUs and Slurm", "Results", "Reference"]
    for step in ("**1. Look", "**2. Reproduce", "**3. Scale"):
        assert step in text
    history = re.findall(r"[Ii]ssue \d+(?:'s)?|the issue's|this session|this task|before this check", text)
    assert history == [], history


def test_citation_and_license():
    import tomllib

    import yaml

    root = README.parent
    citation = yaml.safe_load((root / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    paper = citation["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Misra", "Goyal", "Runwal", "Chen"]
    assert "2308.14969" in paper["url"] and paper["year"] == 2023
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
