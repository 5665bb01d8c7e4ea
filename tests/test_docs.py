"""docs/methods.md: every citation of it in the code and docs names a section that exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/methods\.md,? s\.(\d+)(?:\s*-\s*(\d+))?((?:,\s*s\.\d+)*)")


def sections() -> set[int]:
    text = (REPO / "docs" / "methods.md").read_text()
    return {int(n) for n in re.findall(r"^## s\.(\d+) ", text, flags=re.M)}


def citations() -> list[tuple[str, int]]:
    files = [*(REPO / "reprolib").rglob("*.py"), *(REPO / "notebooks").glob("*.py"),
             REPO / "README.md", REPO / "ARCHITECTURE.md"]
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for first, last, more in CITATION.findall(line):
                cited = list(range(int(first), int(last or first) + 1)) + [int(n) for n in re.findall(r"\d+", more)]
                found += [(f"{path.relative_to(REPO)}:{number}", n) for n in cited]
    return found


def test_sections_are_one_to_twelve():
    assert sections() == set(range(1, 13))


def test_every_citation_names_an_existing_section():
    found = citations()
    assert len(found) >= 20                         # the docstrings do cite it
    missing = [(where, n) for where, n in found if n not in sections()]
    assert missing == []
