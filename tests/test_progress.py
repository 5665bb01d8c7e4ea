"""Progress lines: done / total, current item, elapsed and ETA; the sweep and the tickets report them."""

from __future__ import annotations

import os
from pathlib import Path

from reprolib import progress
from reprolib.config import load_profile
from reprolib.progress import PROGRESS_ENV, Progress, format_seconds
from reprolib.sweep.runner import build_grid, run_sweep


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_count_done_of_total_and_estimate_the_rest(capsys) -> None:
    clock = _Clock()
    meter = Progress(4, "runs", clock=clock)
    clock.now += 30
    assert meter.done("digits lp dense") == "[1/4 runs] digits lp dense  30 s elapsed, ETA 1 min 30 s"
    clock.now += 10
    assert meter.done("digits vp/ilm L2", failed=True) == "[2/4 runs] digits vp/ilm L2  FAILED  40 s elapsed, ETA 40 s"
    meter.done("a")
    clock.now += 3560
    assert meter.done("b").endswith("1 h 00 min elapsed, done")
    assert capsys.readouterr().out.splitlines()[0].startswith("[1/4 runs] digits lp dense")
    assert format_seconds(59.6) == "1 min 00 s" and format_seconds(-3) == "0 s"


def test_under_the_runner_lines_go_to_its_file_not_the_cell(tmp_path: Path, monkeypatch, capsys) -> None:
    sink = tmp_path / "progress.txt"
    monkeypatch.setenv(PROGRESS_ENV, str(sink))
    Progress(2, "ticket levels", echo=True).done("imp level 0 made")
    progress.emit("two\nlines")
    assert capsys.readouterr().out == ""
    lines = sink.read_text().splitlines()
    assert lines[0].startswith("[1/2 ticket levels] imp level 0 made  0 s elapsed, ETA 0 s") and lines[1] == "two lines"


def test_echo_off_prints_nothing(capsys) -> None:
    Progress(1, echo=False).done("quiet")
    assert capsys.readouterr().out == ""


def test_the_sweep_reports_each_run_even_when_not_verbose(tmp_path: Path, monkeypatch) -> None:
    sink = tmp_path / "progress.txt"
    monkeypatch.setenv(PROGRESS_ENV, str(sink))
    configs = [c.replace(results_path=str(tmp_path)) for c in build_grid(load_profile("smoke"))][:3]
    summary = run_sweep(configs, runner=lambda config: {"id": config.target}, verbose=False)
    assert summary.ok
    lines = sink.read_text().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1/3 runs", "[2/3 runs", "[3/3 runs"]
    assert lines[0].split("] ")[1].startswith("digits lp dense 5-shot seed 1")


def test_notebook_runner_echoes_the_kernel_lines(capsys) -> None:
    from reprolib.notebooks.runner import echo_progress

    with echo_progress("02_transfer_sweep"):
        progress.emit("[1/2 runs] digits lp dense")   # what the kernel, a child process, would append
    assert capsys.readouterr().out == "  02_transfer_sweep: [1/2 runs] digits lp dense\n"
    assert PROGRESS_ENV not in os.environ


def test_tickets_report_their_levels(tmp_path: Path, monkeypatch) -> None:
    from reprolib.sparsity import imp

    sink = tmp_path / "progress.txt"
    monkeypatch.setenv(PROGRESS_ENV, str(sink))

    class FakeMaker:
        def __init__(self, *args, **kwargs):
            pass

        def level(self, kind, level):
            return {"kind": kind, "level": level, "status": "existing"}

    monkeypatch.setattr(imp, "TicketMaker", FakeMaker)
    out = imp.make_imp_tickets(None, [0, 1], kinds=("imp", "random"), progress=False)
    assert [(o["kind"], o["level"]) for o in out] == [("imp", 0), ("imp", 1), ("random", 1)]
    assert [line.split("  ")[0] for line in sink.read_text().splitlines()] == [
        "[1/3 ticket levels] imp level 0 existing", "[2/3 ticket levels] imp level 1 existing",
        "[3/3 ticket levels] random level 1 existing"]


def test_a_watched_kernel_gets_a_bar_and_the_runner_none(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert not progress.live_frontend()   # a plain interpreter (pytest) is no notebook kernel
    monkeypatch.setattr(progress, "live_frontend", lambda: True)
    meter = Progress(3, "runs", echo=True)
    assert meter.bar is not None and meter.bar.total == 3
    meter.done("digits lp dense")
    meter.done("digits vp/ilm L2", failed=True)
    assert meter.bar.n == 2 and "digits vp/ilm L2  FAILED" in meter.bar.postfix
    meter.done("c")
    assert meter.bar.disable or meter.bar.n == 3
    out = capsys.readouterr().out
    assert "[1/3 runs]" not in out and "[2/3 runs] digits vp/ilm L2  FAILED" in out   # failures stay in the cell
    assert Progress(3, "runs", echo=False).bar is None   # verbose off (as under the runner): no bar
    monkeypatch.setattr(progress, "live_frontend", lambda: False)
    assert Progress(3, "runs", echo=True).bar is None


def test_the_runner_is_not_a_watched_kernel(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "progress.txt"))
    assert not progress.live_frontend()
