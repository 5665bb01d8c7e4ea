"""The benchmarks' one Markdown table writer (bench.py and bench_grouped.py share it)."""

from __future__ import annotations

from typing import Any


def to_markdown(rows: list[dict[str, Any]], title: str) -> str:
    columns = ["benchmark", "value", "images/s", "accuracy", "maxrss", "unit", "note"]
    columns = [c for c in columns if any(c in r for r in rows)]
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def replace_section(path, title: str, lines: list[str]) -> str:
    """Write `lines` as the section `title` ('## ...') of the Markdown file at `path`, in place of
    that section when it is there, else at the end; the rest of the file is kept. Atomic."""
    from pathlib import Path

    from reprolib.records import atomic_write

    path = Path(path)
    text = path.read_text() if path.is_file() else "# reprolib benchmarks\n"
    before, found, after = text.partition(title + "\n")
    rest = after[after.find("\n## "):] if found and "\n## " in after else ""
    section = "\n".join([title, *lines]).rstrip() + "\n"
    new = before.rstrip() + "\n\n" + section + rest
    atomic_write(path, lambda f: f.write(new), "w")
    return section
