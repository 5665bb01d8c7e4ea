"""Progress of long work (the sweep's runs, the tickets' levels): done / total, current item, ETA.

A line goes to the terminal of whoever started the work, never into a notebook's saved
outputs (they would change on every rerun and dirty git):
- under `reprolib notebooks` the runner sets `REPROLIB_PROGRESS_FILE` for the kernel; lines
  are appended there and the runner echoes them to its own terminal as they arrive;
- in a notebook kernel someone is watching (JupyterLab; `live_frontend()`), a progress bar
  (tqdm.auto: a widget) when `echo` is true, with the current item beside it;
- otherwise (a terminal) a line is printed when `echo` is true.
Notebooks pass `echo=live_frontend()` (verbose / not --quiet), so a cell run by hand shows its
bar while the executed copy `reprolib notebooks` saves stays byte-stable.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

PROGRESS_ENV = "REPROLIB_PROGRESS_FILE"


def format_seconds(seconds: float) -> str:
    """'42 s', '3 min 05 s' or '1 h 02 min': short enough for one progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def live_frontend() -> bool:
    """True inside a Jupyter kernel that is not run by `reprolib notebooks` (a person is watching)."""
    if os.environ.get(PROGRESS_ENV):
        return False
    try:
        from IPython import get_ipython
    except ImportError:   # no IPython at all: a plain interpreter
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def emit(line: str, echo: bool = True) -> None:
    """Send one progress line to the runner's side channel, else print it when `echo`."""
    target = os.environ.get(PROGRESS_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as sink:
            sink.write(line.replace("\n", " ") + "\n")
        return
    if echo:
        print(line, file=sys.stdout, flush=True)


class Progress:
    """Counts finished items of a known total and reports each with the elapsed time and an ETA.

    The ETA is the mean time per finished item times the items left (items already done
    from an earlier run are counted as they come: they are fast, so the ETA falls quickly).
    """

    def __init__(self, total: int, what: str = "runs", echo: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.what, self.echo, self.clock = total, what, echo, clock
        self.count, self.start = 0, clock()
        self.bar = None
        if echo and total > 0 and live_frontend():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=what, unit=what.split()[-1].rstrip("s") or "item")

    def line(self, label: str, failed: bool = False) -> str:
        """The report after `count` items: '[i/n runs] label  12 s elapsed, ETA 30 s'."""
        elapsed = self.clock() - self.start
        left = self.total - self.count
        eta = "done" if left <= 0 else f"ETA {format_seconds(elapsed / max(self.count, 1) * left)}"
        return (f"[{self.count}/{self.total} {self.what}] {label}{'  FAILED' if failed else ''}  "
                f"{format_seconds(elapsed)} elapsed, {eta}")

    def done(self, label: str, failed: bool = False) -> str:
        """One more item finished: report it and return the line."""
        self.count += 1
        text = self.line(label, failed)
        if self.bar is None:
            emit(text, self.echo)
            return text
        self.bar.set_postfix_str(label + ("  FAILED" if failed else ""), refresh=False)
        self.bar.update(1)
        if failed:
            self.bar.write(text)   # a failure stays in the cell, not only in the bar's last state
        if self.count >= self.total:
            self.bar.close()
        return text
