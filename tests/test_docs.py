"""docs/: every citation of docs/methods.md in the code and docs names a section that exists, and
every relative link of the README and docs/ opens a file of the checkout (as the forge shows them)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/methods\.md,? s\.(\d+)(?:\s*-\s*(\d+))?((?:,\s*s\.\d+)*)")


def sections() -> set[int]:
    text = (REPO / "docs" / "methods.md").read_text()
    return {int(n) for n in re.findall(r"^## s\.(\d+) ", text, flags=re.M)}


def citations() -> list[tuple[str, int]]:
    files = [*(REPO / "reprolib").rglob("*.py"), *(REPO / "notebooks").glob("*.py"),
             REPO / "README.md", REPO / "ARCHITECTURE.md", *(REPO / "docs").glob("*.md")]
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


LINK = re.compile(r"\]\(([^)\s]+)\)")
# Pages other branches write, linked from here before they land.
ARRIVING = {"docs/reproducibility.md", "docs/reliability.md", "docs/gpu.md"}


def relative_links() -> list[tuple[str, str, Path]]:
    """(page, link, the file it opens) of every relative link in README.md and docs/*.md."""
    found = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for link in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", link) or link.startswith("#"):
                continue
            target = (page.parent / link.split("#")[0]).resolve()
            found.append((str(page.relative_to(REPO)), link, target))
    return found


def test_every_relative_link_opens_a_file_of_the_checkout():
    found = relative_links()
    assert len(found) >= 20 and any(page.startswith("docs/") for page, _, _ in found)
    broken = [(page, link) for page, link, target in found
              if not target.exists() and str(target.relative_to(REPO)) not in ARRIVING]
    assert broken == []
    outside = [(page, link) for page, link, target in found if not target.is_relative_to(REPO)]
    assert outside == []
