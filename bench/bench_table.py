"""The benchmarks' one Markdown table writer (bench.py and bench_grouped.py share it)."""

from __future__ import annotations

from typing import Any


def to_markdown(rows: list[dict[str, Any]], title: str) -> str:
    columns = ["benchmark", "value", "images/s", "accuracy", "maxrss", "unit", "note"]
    columns = [c for c in columns if any(c in r for r in rows)]
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
