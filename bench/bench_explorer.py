"""The explorer's redraw: CPU seconds per control change, on the shipped studies' ledgers.

`python bench/bench_explorer.py [--rounds 3] [--out bench/results.md]` opens each shipped study as
the explorer does (reprolib.plots.explorer_widgets.open_study: the ledger read and indexed once,
then, in the background, the scores archive's manifest read, the reliability bins pooled and the
garbage collected; the replay waits for that, as a user's first click comes later) and replays
the browser test's path through the controls (target, arm, shots, network A, metric, every
network B, the one-run panel on, each seed) with the explorer's own drawing object (`Drawing`:
the comparison figure and the one-run panel each made once and updated in place, PNG at their
DPI, the one-run panel drawn only for a new run). For each change it records the process's CPU
time (time.process_time: what the kernel spends, whatever else the machine runs) and the wall
time, and writes their median and maximum, with the machine's load average, as a Markdown
section appended to --out. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from reprolib.plots.explorer import DENSE, explorer_choices, metric_choices   # noqa: E402
from reprolib.plots.explorer_widgets import Drawing, open_study, sparsest   # noqa: E402

STUDIES = ("embedded", "imagenet-lite")
ONE_RUN = ("one run of B on", "seed")   # the changes that also draw the one-run panel


def changes(choices: dict, metrics: list[str]) -> list[tuple[str, dict]]:
    """The browser test's path: (what changed, the controls' values after it), one change at a time.

    Each value set is complete, so a cell the sweep did not run shows its one-line message, as in
    the widget."""
    values = {"target": choices["target"][0], "arm": choices["arm"][0], "n_shot": choices["n_shot"][-1],
              "a": DENSE, "b": sparsest(choices), "metric": metrics[0], "seed": 1}
    path = [("open", dict(values), False)]
    for key, options in (("target", choices["target"]), ("arm", choices["arm"]), ("n_shot", choices["n_shot"]),
                         ("metric", metrics)):
        values[key] = options[(options.index(values[key]) + 1) % len(options)] if len(options) > 1 else values[key]
        path.append((key, dict(values), False))
    for _, key in choices["network"]:
        values["b"] = key
        path.append(("network B", dict(values), False))
    path.append(("one run of B on", dict(values), True))
    for seed in (2, 3, 1):
        values["seed"] = seed
        path.append(("seed", dict(values), True))
    return path


def replay(study_name: str) -> list[tuple[str, float, float]]:
    """(change, CPU seconds, wall seconds) of every change of the path, in a fresh drawing."""
    study = open_study(study_name)
    study.warmed()   # its background reading (explorer_widgets.warm): done before a user's first click
    choices = explorer_choices(study.ledger)
    metrics = [name for _, name in metric_choices(study.ledger)]
    drawing = Drawing()
    out = []
    for what, values, details in changes(choices, metrics):
        cpu, wall = time.process_time(), time.perf_counter()
        drawing.draw(study, values, details)
        out.append((what, time.process_time() - cpu, time.perf_counter() - wall))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="replays of the path per study")
    parser.add_argument("--out", default=None, help="append the table to this Markdown file")
    args = parser.parse_args()
    rows = ["| study | redraws | changes | CPU s per change, median | CPU s, max | wall s, median | wall s, max |",
            "|---|---|---|---|---|---|---|"]
    for study in STUDIES:
        timed = [t for _ in range(args.rounds) for t in replay(study)[1:]]   # the first draw opens the study
        for what, picked in (("the comparison", [t for t in timed if t[0] not in ONE_RUN]),
                             ("with the one-run panel", [t for t in timed if t[0] in ONE_RUN])):
            cpu, wall = [t[1] for t in picked], [t[2] for t in picked]
            rows.append(f"| {study} | {what} | {len(picked)} | {statistics.median(cpu):.3f} | {max(cpu):.3f} | "
                        f"{statistics.median(wall):.3f} | {max(wall):.3f} |")
            print(rows[-1], flush=True)
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    head = (f"\n## Explorer redraw per control change (bench/bench_explorer.py, {args.rounds} rounds; "
            f"load average {load} (1 / 5 / 15 min), {os.cpu_count()} cores)\n\n")
    if args.out:
        with open(Path(args.out), "a") as f:
            f.write(head + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
