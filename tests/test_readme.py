"""The README and docs/: their Python blocks run as written, their numbers come from the tables,
the README stays a short front page, and neither tells the history of the work.

Each ```python block (of README.md and docs/commands.md) runs in a fresh interpreter, in a
temporary folder, with this session's temporary REPROLIB_HOME (see conftest.py) and the offline
data. A block preceded by the line `<!-- no-test: REASON -->` is skipped (for blocks that need a
GPU or the internet); there is none today.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"(<!-- no-test: [^>]*-->\s*\n)?```python\n(.*?)```", re.S)
MAX_README_LINES = 250
# Phrases that tell how the work went rather than what the workbook is.
HISTORY = re.compile(r"[Ii]ssue \d+(?:'s)?|the issue's|this session|this task|before this check|as priced today"
                     r"|before the cut|as the code ran before|ASSUMED: the issue|\bbefore:|\bafter:|\(was \d"
                     r"|, \d[\d,.]* now\b|\bno longer\b|\bused to\b")


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    """(code, skip reason or None) of every ```python block, in order."""
    return [(m.group(2), m.group(1).strip()[len("<!-- no-test: "):-len("-->")].strip() if m.group(1) else None)
            for m in BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text()) + python_blocks((ROOT / "docs" / "commands.md").read_text())


def test_the_extractor_reads_blocks_and_skip_marks():
    text = "x\n```python\na = 1\n```\n<!-- no-test: needs a GPU -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [("a = 1\n", None), ("b = 2\n", "needs a GPU")]
    assert len(BLOCKS) >= 2, "the README and docs/commands.md show the library's Python API"


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


def test_commands_block_1_profile_paths_and_data(tmp_path, workbook_home):
    code, skip = BLOCKS[1]
    assert skip is None
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    artifacts, shapes = result.stdout.strip().splitlines()
    assert artifacts == str(workbook_home / "artifacts" / "smoke")
    assert shapes == "(50, 1, 8, 8) [5, 5, 5, 5, 5, 5, 5, 5, 5, 5]"


def test_commands_block_2_loads_a_torch_prune_ticket(tmp_path):
    code, skip = BLOCKS[2]
    assert skip is None
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]
    # resnet18 has 20 convs; all but the stem are pruned globally to 20% kept.
    assert result.stdout.strip() == "19 masked weights, 0.200 kept"


def test_every_python_block_is_covered():
    # A new block needs its own test above (with the values it should print), or a no-test mark.
    assert len(BLOCKS) == 3, f"README and docs/commands.md have {len(BLOCKS)} python blocks; add a test for each new one"


def test_the_readme_is_a_front_page_look_reproduce_scale_results_cite():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, "the reference belongs in docs/"
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["Start here: look, reproduce, scale", "Results", "Reference", "Citing and license"]
    for step in ("**1. Look", "**2. Reproduce", "**3. Scale"):
        assert step in text
    for page in ("commands", "profiles", "records", "gpu-and-slurm", "methods", "reproducibility"):
        assert f"(docs/{page}.md" in text, f"the README links docs/{page}.md"


def test_neither_the_readme_nor_the_docs_tell_the_history_of_the_work():
    found = [(path.name, m.group(0)) for path in [README, *DOCS] for m in HISTORY.finditer(path.read_text())]
    assert found == []
    assert HISTORY.search("about 1,410 GPU-hours as the code ran before, 1,070 now")   # the check can fail


def test_the_numbers_quoted_are_the_tables_numbers():
    """Every generated block of README.md and docs/ is what the studies' tables give now, and the
    README quotes each shipped study's results and size through one."""
    from reprolib.study.docs_blocks import BLOCK as GENERATED, blocks, stale

    assert stale(ROOT) == [], "run `make docs` (python -m reprolib.study.docs_blocks)"
    names = {m["name"] for m in GENERATED.finditer(README.read_text())}
    assert set(blocks(ROOT)) - {"agreement-imagenet-lite"} <= names
    assert {"results-embedded", "results-imagenet-lite", "size-embedded", "size-imagenet-lite"} <= names


def test_a_changed_table_makes_its_block_stale(tmp_path):
    import shutil

    from reprolib.study.docs_blocks import stale

    for folder in ("figures/embedded", "artifacts/embedded"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.png", "*.pdf", "runs"))
    (tmp_path / "docs").mkdir()
    shutil.copy(README, tmp_path / "README.md")
    assert [s for s in stale(tmp_path) if "embedded" in s] == []
    import pandas as pd

    table = tmp_path / "figures" / "embedded" / "accuracy_vs_sparsity.csv"
    frame = pd.read_csv(table)
    frame.loc[0, "dense"] = "a regenerated study's number"
    frame.to_csv(table, index=False)
    assert stale(tmp_path) == ["README.md: results-embedded"]


def test_citation_and_license():
    import tomllib

    import yaml

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    paper = citation["preferred-citation"]
    assert [a["family-names"] for a in paper["authors"]] == ["Misra", "Goyal", "Runwal", "Chen"]
    assert "2308.14969" in paper["url"] and paper["year"] == 2023
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
