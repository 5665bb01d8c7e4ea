"""`python -m reprolib notebooks --profile P --out DIR [--only NAME] [--force]`: run the study notebooks.

The notebooks live in `notebooks/NN_name.py` (jupytext percent format: diffable, and
JupyterLab opens them as notebooks). Each is converted to .ipynb and executed by papermill
with the profile's YAML as its parameters (the same mapping `papermill -f profile.yaml`
gives), in the venv's `python3` kernel; the executed copy lands in `DIR/NN_name.ipynb`.

Shipped results: a checkout may carry a study's ledger (and the small files notebooks 03-11
read: `SHIPPED_FILES`) without the run records behind it. Then the notebooks that train (01
tickets, 02 sweep) are not re-executed unless forced (`--force`, `make figures FORCE=1`): their
committed executed copies stand, and 03-11 redraw from the shipped ledger.

Only what changed is redone: the executed copy records a hash of its inputs (the notebook
source, the profile YAML, the results it reads, and the library code that draws them) and of
the results it made (tickets, ledger), and a notebook whose hash matches is skipped. A
failed notebook keeps its executed copy (with the traceback) but no hash, so the next call
runs it again.

`setup(**parameters) -> Profile` is the notebooks' validation cell: it checks the
papermill parameters (types, names, values) against reprolib.config and fails in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.config import PROFILE_DIR, Profile, load_profile
from reprolib.errors import ReprolibError, check_choice
from reprolib.progress import PROGRESS_ENV

KERNEL = "python3"
# The kernelspec JupyterLab writes for ipykernel's default kernel (the one every install has):
# an executed copy that names another display name is rewritten by Lab on opening (and dirties git).
KERNELSPEC = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
HASH_KEY = "reprolib_inputs_sha256"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# A notebook parameter the runner sets to False: no live widgets in a headless run. nbclient can
# block for ever on a cell that creates widgets (jupyter/nbclient#312, seen here about one run in
# three of the explorer), and the saved copy could not use them anyway.
LIVE_WIDGETS = "live_widgets"
WIDGET_PLACEHOLDER = "(interactive widgets: open this notebook's source NN_name.py in JupyterLab and run it)"
# Library code whose change redraws figures (the commands notebooks 01/02 call skip finished work),
# relative to the folder that holds the package (the checkout, or site-packages).
DRAWING_CODE = ["reprolib/plots", "reprolib/claims.py", "reprolib/published.py", "reprolib/ledger.py",
                "reprolib/published"]
_CODE_ROOT = paths.PACKAGE_DIR.parent
# What a checkout ships of a study, relative to its artifacts folder (.gitignore lets exactly these through):
# the ledger, the tickets table and the Reprogrammer's run records (08 redraws from them).
SHIPPED_FILES = ["ledger.csv", "tickets.csv", "reprogrammer/runs/*.json"]
# Notebooks that train; under shipped results they are skipped unless forced.
TRAINING_NOTEBOOKS = (1, 2)


def names() -> list[str]:
    """Notebook names in the order the study runs them (from `<home>/notebooks`)."""
    return sorted(p.stem for p in paths.notebooks_dir().glob("[0-9][0-9]_*.py"))


def setup(**parameters: Any) -> Profile:
    """The validated Profile of a notebook's parameters; creates its figures folder."""
    name = parameters.pop("profile", None)
    if not isinstance(name, str):
        raise ReprolibError(f"parameter profile must be str, got {type(name).__name__} {name!r}")
    profile = load_profile(name, **parameters)
    profile.path("figures").mkdir(parents=True, exist_ok=True)
    return profile


def _short_name(file: Path) -> Path:
    """A file's name relative to the workbook root or the package's folder, so hashes move with the checkout."""
    for root in (paths.home(), _CODE_ROOT):
        if file.is_relative_to(root):
            return file.relative_to(root)
    return file


def _file_digests(files_or_dirs: list[Path]) -> list[str]:
    out = []
    for path in files_or_dirs:
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path] if path.exists() else []
        out += [f"{_short_name(f)}:{hashlib.sha256(f.read_bytes()).hexdigest()}" for f in files]
    return out


def upstream_inputs(name: str, profile: Profile) -> list[Path]:
    """The results a notebook reads: tickets for 01/02, the ledger and tickets table after that."""
    artifacts = profile.path("artifacts")
    number = int(name[:2])
    if number <= 1:
        return []
    if number == 2:
        # It builds the ledger: a change in the ledger code rebuilds it (runs are still skipped).
        return [d / "sparsity.json" for d in paths.ticket_dirs(artifacts)] + [_CODE_ROOT / "reprolib/ledger.py"]
    return [paths.ledger_file(artifacts), paths.tickets_table_file(artifacts)] + [_CODE_ROOT / p for p in DRAWING_CODE]


def produced_results(name: str, profile: Profile) -> list[Path]:
    """The results a notebook makes for later ones: 01 the upstream model and tickets, 02 the
    ledger, 08 the Reprogrammer's runs. Hashed with its inputs (after it ran), so an executed
    copy whose results are gone runs again: a fresh clone holds the committed executed
    notebooks but no artifacts, and 01, which reads nothing, would otherwise be skipped."""
    artifacts = profile.path("artifacts")
    number = int(name[:2])
    if number == 1:
        return [d / "sparsity.json" for d in paths.ticket_dirs(artifacts)]
    if number == 2:
        return [paths.ledger_file(artifacts)]
    if number == 8:
        return [paths.reprogrammer_runs_dir(artifacts)]
    return []


def shipped_results(profile: Profile) -> bool:
    """True when the profile's ledger came with the checkout: it exists, but no run record does."""
    artifacts = profile.path("artifacts")
    runs = paths.runs_dir(artifacts)
    return paths.ledger_file(artifacts).exists() and not (runs.is_dir() and any(runs.glob("*.json")))


def inputs_hash(name: str, profile_file: Path, profile: Profile) -> str:
    """SHA-256 over the notebook source, the profile YAML, the notebook's upstream inputs and
    the results it produced."""
    parts = _file_digests([paths.notebooks_dir() / f"{name}.py", profile_file]) + \
        _file_digests(upstream_inputs(name, profile)) + ["produced:"] + _file_digests(produced_results(name, profile))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _recorded_hash(path: Path) -> str | None:
    import nbformat

    if not path.exists():
        return None
    try:
        return nbformat.read(path, as_version=4).metadata.get(HASH_KEY)
    except Exception:   # an unreadable copy is simply redone
        return None


def _declared_parameters(notebook) -> set[str]:
    """Names assigned in the cell tagged `parameters`."""
    import ast

    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    raise ReprolibError("a notebook has no cell tagged 'parameters'; valid notebooks open with one")


def kernel_manager_class() -> type:
    """nbclient's kernel manager with the kernel on IPC sockets (in Jupyter's private runtime
    folder) instead of TCP: nothing listens on the network, so ipykernel has no reason for its
    "Kernel is running over TCP without encryption" warning.

    It also skips the SIGINT jupyter_client sends before every shutdown request: the notebook
    has finished (or failed) by then, and an idle kernel that gets it logs "[IPKernelApp]
    ERROR | KeyboardInterrupt caught in kernel." on the terminal. A kernel that does not
    answer the shutdown request is still killed by jupyter_client after its wait."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return IpcKernelManager


class _Tail(threading.Thread):
    """Echoes the lines the kernel appends to the progress file, prefixed by the notebook's name."""

    def __init__(self, path: Path, name: str):
        super().__init__(daemon=True)
        self.path, self.name, self.stopped, self.position = path, name, threading.Event(), 0

    def poll(self) -> None:
        with open(self.path, encoding="utf-8") as source:
            source.seek(self.position)
            for line in source.readlines():
                print(f"  {self.name}: {line.rstrip()}", file=sys.stdout, flush=True)
            self.position = source.tell()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.poll()


@contextlib.contextmanager
def echo_progress(name: str):
    """Within: the kernel's reprolib.progress lines reach this terminal (not the saved notebook)."""
    folder = tempfile.mkdtemp(prefix="reprolib-progress-")
    path = Path(folder) / "progress.txt"
    path.touch()
    tail, before = _Tail(path, name), os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(path)   # the kernel inherits this process's environment
    tail.start()
    try:
        yield
    finally:
        tail.stopped.set()
        tail.join()
        tail.poll()
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before
        path.unlink(missing_ok=True)
        os.rmdir(folder)


def notebook_parameters(declared: set[str], profile_values: dict[str, Any]) -> dict[str, Any]:
    """What papermill injects: the profile's values the notebook declares, and no live widgets."""
    parameters = {k: v for k, v in profile_values.items() if k in declared}
    if LIVE_WIDGETS in declared:
        parameters[LIVE_WIDGETS] = False
    return parameters


def clean_executed(notebook) -> None:
    """Strip what changes between two runs with the same numbers, and what the copy cannot honour.

    Gone: papermill's times and paths, nbclient's per-cell execution times, random cell ids
    (numbered instead) and the jupytext pairing the source carries (an executed .ipynb in
    notebooks/executed/ has no paired .py there, and JupyterLab refuses to open it with one).
    Widgets: their saved state (random model ids) goes and each widget output becomes a line
    saying it needs a live kernel. Kept: the parameters papermill injected and the inputs hash.
    """
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)   # what JupyterLab would write, so opening changes nothing
    record = notebook.metadata.pop("papermill", {})
    if "parameters" in record:
        notebook.metadata["papermill"] = {"parameters": record["parameters"]}
    notebook.metadata.pop("widgets", None)   # widget state: random model ids, dead without a kernel
    for index, cell in enumerate(notebook.cells):
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        cell["id"] = f"cell-{index:02d}"
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                output["data"] = {"text/plain": WIDGET_PLACEHOLDER}


def _write_atomic(notebook, path: Path) -> None:
    import nbformat

    temporary = path.with_name(f".{path.name}.tmp")
    nbformat.write(notebook, temporary)
    os.replace(temporary, path)


def execute(name: str, profile_name: str, out_dir: Path, force: bool = False) -> tuple[str, float]:
    """Execute one notebook unless its inputs are unchanged; returns (status, seconds).

    Long because it is one sequence: hash, skip, convert, execute with progress echoed,
    clean, write.
    """
    import jupytext
    import papermill
    import yaml

    profile_file = paths.profile_file(profile_name)
    parameters = yaml.safe_load(profile_file.read_text()) or {}
    profile = load_profile(profile_name)
    out_path = out_dir / f"{name}.ipynb"
    if not force and int(name[:2]) in TRAINING_NOTEBOOKS and shipped_results(profile) and out_path.exists():
        return "shipped", 0.0
    digest = inputs_hash(name, profile_file, profile)
    if not force and _recorded_hash(out_path) == digest:
        return "unchanged", 0.0
    notebook = jupytext.read(paths.notebooks_dir() / f"{name}.py")
    # Pass the YAML keys the notebook declares (papermill warns about the others); the
    # notebook's setup() reads the rest of the profile from the same YAML.
    parameters = notebook_parameters(_declared_parameters(notebook), parameters)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    clean_executed(notebook)
    running = out_dir / f".{name}.running.ipynb"   # papermill saves here cell by cell
    started = time.perf_counter()
    try:
        with echo_progress(name):
            executed = papermill.execute_notebook(notebook, str(running), parameters=parameters, kernel_name=KERNEL,
                                                  cwd=str(paths.home()), progress_bar=False,
                                                  kernel_manager_class=kernel_manager_class())
    except papermill.PapermillExecutionError as err:
        os.replace(running, out_path)   # the failed copy, with its traceback and no hash: redone next time
        raise ReprolibError(f"notebook {name} failed in cell {err.exec_count}: {err.ename}: "
                            f"{str(err.evalue).splitlines()[0] if err.evalue else ''}; see {out_path}") from None
    finally:
        running.unlink(missing_ok=True)
    # Recompute: notebook 02 writes the ledger that later notebooks hash, not itself.
    clean_executed(executed)
    executed.metadata[HASH_KEY] = inputs_hash(name, profile_file, profile)
    _write_atomic(executed, out_path)
    return "executed", time.perf_counter() - started


def run_notebooks(profile_name: str, out_dir: str | Path, only: list[str] | None = None,
                  force: bool = False, verbose: bool = True) -> dict[str, tuple[str, float]]:
    """Execute the notebooks in order (or only the named ones); returns name -> (status, seconds)."""
    check_choice("profile", profile_name, [p.stem for p in PROFILE_DIR.glob("*.yaml")])
    available = names()
    if not available:
        raise ReprolibError(f"no notebooks (NN_name.py) in {paths.notebooks_dir()}; run from a reprolib checkout "
                            f"or set {paths.HOME_ENV} to one")
    selected = available if not only else [check_choice("notebook", n, available) for n in only]
    out = Path(out_dir).resolve()   # a folder typed on the command line: from where the user stands
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.running.ipynb"):   # left by a run killed with -9 (any other exit removes its own)
        stale.unlink(missing_ok=True)
    results = {}
    for name in selected:
        results[name] = execute(name, profile_name, out, force=force)
        if verbose:
            status, seconds = results[name]
            note = {"executed": f" in {seconds:.1f} s", "shipped": ": the shipped results stand (FORCE=1 retrains)"}
            print(f"{name:<28} {status}" + note.get(status, ""), flush=True)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help="smoke | embedded | paper")
    parser.add_argument("--out", required=True, help="folder for the executed notebooks")
    parser.add_argument("--only", action="append", default=None, help="a notebook name (repeatable)")
    parser.add_argument("--force", action="store_true", help="execute even when the inputs are unchanged")


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt   # unwinds like Ctrl-C: the kernel is shut down, the .running copy removed


def run(args: argparse.Namespace) -> int:
    """Between notebooks SIGTERM unwinds as Ctrl-C does; during one, nbclient's own SIGINT/SIGTERM
    handlers shut the kernel down (the kernel's sweep workers watch the kernel and exit with it),
    and `execute` removes the `.running` copy whatever ends it. After a kill -9 the kernel exits
    with its parent (ipykernel's parent poller), and the next run removes the stale copy."""
    from reprolib.records import check_output_dir

    check_output_dir(args.out, "--out")   # before any notebook runs: not a file, not under one, writable
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.perf_counter()
    results = run_notebooks(args.profile, args.out, only=args.only, force=args.force)
    executed = sum(1 for status, _ in results.values() if status == "executed")
    shipped = sum(1 for status, _ in results.values() if status == "shipped")
    print(f"{executed} executed, {shipped} kept as shipped, {len(results) - executed - shipped} unchanged, {time.perf_counter() - started:.1f} s in all")
    return 0
