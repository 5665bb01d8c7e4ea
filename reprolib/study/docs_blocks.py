"""The numbers the README and docs/ quote about the shipped studies, generated from their tables.

A generated block sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->` in a Markdown
file; `python -m reprolib.study.docs_blocks` (`make docs`) rewrites every block of README.md and
docs/*.md from the current tables, and `--check` exits 1 naming the blocks that differ
(tests/test_readme.py runs the check). So a regenerated study (new seeds, a new design) changes
the quoted numbers with it, and a number typed by hand cannot go stale unseen.

Blocks, per shipped study S (embedded, imagenet-lite):
- `results-S`: accuracy of the dense model and the sparsest network of each kind in the headline
  setting, mean [95% t interval] n=seeds, as `figures/S/accuracy_vs_sparsity.csv` has them
  (notebook 03), and the paper's claims with their verdicts (`figures/S/claims*.csv`, notebook 09);
- `size-S`: the study's runs, seeds and training time (`artifacts/S/ledger.csv`: the sum of the
  runs' recorded wall times);
- `agreement-S`: for a study of one-shot pruned networks, each one's top-1 agreement with the
  dense network (`artifacts/S/tickets.csv`).
The results blocks link `figures/...` from the checkout's root: they belong in README.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from reprolib import paths
from reprolib.records import atomic_write_bytes

STUDIES = ("embedded", "imagenet-lite")
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)
SPARSE_COLUMN = re.compile(r"^(?P<kind>.+) L(?P<level>\d+)$")


def _table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def headline_columns(columns: list[str]) -> list[str]:
    """'dense' and the sparsest level of each kind of network ('imp L8', 'magnitude L8', ...)."""
    sparsest: dict[str, tuple[int, str]] = {}
    for column in columns:
        match = SPARSE_COLUMN.match(column)
        if match and int(match["level"]) >= sparsest.get(match["kind"], (-1, ""))[0]:
            sparsest[match["kind"]] = (int(match["level"]), column)
    return ["dense"] + [column for _, column in sparsest.values()]


def results_block(root: Path, study: str) -> str:
    figures = root / "figures" / study
    accuracy = pd.read_csv(figures / "accuracy_vs_sparsity.csv")
    shown = accuracy[["target", "arm", *headline_columns(list(accuracy.columns))]]
    setting = ", ".join(sorted(set(accuracy["shots"].astype(str))))
    out = [f"Accuracy (%, {setting}; mean [95% t interval] n=seeds) from "
           f"[`figures/{study}/accuracy_vs_sparsity.md`](figures/{study}/accuracy_vs_sparsity.md):", "",
           _table(shown), ""]
    for claims in sorted(figures.glob("claims*.csv")):
        table = pd.read_csv(claims)
        columns = [c for c in ("claim", "verdict", "holds on null ledgers") if c in table.columns]
        out += [f"The paper's claims, [`figures/{study}/{claims.stem}.md`](figures/{study}/{claims.stem}.md) "
                "(the numbers behind each verdict are there):", "", _table(table[columns]), ""]
    return "\n".join(out)


def size_block(root: Path, study: str) -> str:
    ledger = pd.read_csv(paths.ledger_file(root / "artifacts" / study))
    seeds = sorted(int(s) for s in ledger["seed"].unique())
    minutes = pd.to_numeric(ledger["wall_time_s"], errors="coerce").sum() / 60
    return (f"`{study}`: {len(ledger):,} runs ({ledger['target'].nunique()} targets, {ledger['arm'].nunique()} arms, "
            f"seeds {', '.join(map(str, seeds))}); their training took {minutes:.0f} CPU-minutes in all, one thread "
            f"per run (the sum of the runs' recorded wall times, `artifacts/{study}/ledger.csv`).\n")


def _measured_agreement(root: Path, study: str) -> bool:
    tickets = root / "artifacts" / study / "tickets.csv"
    frame = pd.read_csv(tickets) if tickets.exists() else pd.DataFrame()
    return "agreement_with_dense" in frame and pd.to_numeric(frame["agreement_with_dense"], errors="coerce").notna().any()


def agreement_block(root: Path, study: str) -> str:
    """Each one-shot network's top-1 agreement with the dense network (`artifacts/S/tickets.csv`)."""
    tickets = pd.read_csv(root / "artifacts" / study / "tickets.csv")
    tickets = tickets[pd.to_numeric(tickets["agreement_with_dense"], errors="coerce").notna()].sort_values("level")
    header = ["level (density)", *(f"{int(r.level)} ({100 * r.density:.0f}%)" for r in tickets.itertuples())]
    row = ["agreement with dense", *(f"{100 * float(v):.1f}%" for v in tickets["agreement_with_dense"])]
    return _table(pd.DataFrame([row], columns=header)) + "\n"


def blocks(root: Path) -> dict[str, str]:
    """Every generated block's text, by name, from the tables under `root` (a checkout)."""
    out = {}
    for study in STUDIES:
        if (root / "figures" / study / "accuracy_vs_sparsity.csv").exists():
            out[f"results-{study}"] = results_block(root, study)
        if paths.ledger_file(root / "artifacts" / study).exists():
            out[f"size-{study}"] = size_block(root, study)
        if _measured_agreement(root, study):
            out[f"agreement-{study}"] = agreement_block(root, study)
    return out


def fill(text: str, generated: dict[str, str]) -> str:
    """`text` with each known block's body replaced by its generated text (unknown blocks kept)."""
    def body(match: re.Match) -> str:
        new = generated.get(match["name"], match["body"])
        return match.group(1) + new + ("" if new.endswith("\n") else "\n") + match.group(4)

    return BLOCK.sub(body, text)


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def stale(root: Path) -> list[str]:
    """'FILE: BLOCK' for each block whose text differs from what the tables give now."""
    generated = blocks(root)
    out = []
    for path in documents(root):
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if match["name"] in generated and fill(match.group(0), generated) != match.group(0):
                out.append(f"{path.relative_to(root)}: {match['name']}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 naming stale blocks; write nothing")
    args = parser.parse_args(argv)
    root = paths.home()
    if args.check:
        found = stale(root)
        print("\n".join(f"stale: {s} (run `make docs`)" for s in found) or "every generated block is current")
        return 1 if found else 0
    generated = blocks(root)
    for path in documents(root):
        text = path.read_text(encoding="utf-8")
        if fill(text, generated) != text:
            atomic_write_bytes(path, fill(text, generated).encode("utf-8"))
            print(f"rewrote the generated blocks of {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
