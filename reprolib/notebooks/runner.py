"""`python -m reprolib notebooks --profile P --out DIR [--only NAME] [--force]`: run the study notebooks.

The notebooks live in `notebooks/NN_name.py` (jupytext percent format: diffable, and
JupyterLab opens them as notebooks). Each is converted to .ipynb and executed by papermill,
which injects one parameter, `profile` (a profile name, or the path of a user's profile
YAML given as `--profile PATH.yaml`), in the venv's `python3` kernel; the executed copy lands
in `DIR/NN_name.ipynb`.

Parameters: a notebook's `parameters` cell holds `profile = None` (the chosen study:
$REPROLIB_PROFILE, else embedded; reprolib.notebooks.studies) and its other parameters default
to None, "the profile's value"; `setup(**parameters) -> Profile`, in the
next cell, fills them in from the profile's YAML and checks what was given instead (types,
names, values) against reprolib.config, failing in one line. So a notebook run by hand in
JupyterLab and one run here build the same study, and papermill can still set any parameter.

What runs, and in which order, comes from each notebook's declaration of what it reads and
writes (its header's `reprolib:` mapping, `reprolib.notebooks.plan`): writers run before their
readers, and an executed copy records a hash of its inputs (the notebook source, the profile
YAML, the resources it reads) and of what it wrote; a notebook whose hash matches is skipped.
A failed notebook keeps its executed copy (with the traceback) but no hash, so the next call
runs it again.

Shipped results: a checkout may carry a study's ledger (and the small files the drawing
notebooks read: `SHIPPED_FILES`) without the run records behind it. Then the notebooks that
declare `trains: true` (01 tickets, 02 sweep) are not re-executed unless forced (`--force`,
`make figures FORCE=1`): their committed executed copies stand, and the rest redraw from the
shipped ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.config import Profile, load_profile, profile_help, profile_path
from reprolib.errors import ReprolibError, check_choice
from reprolib.notebooks.plan import NotebookSpec, inputs_hash, plan, read_spec, shipped_results
from reprolib.notebooks.studies import chosen_profile
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
# Notebook 02's parameter that trains a study whose results shipped with the checkout (default False:
# they stand, reported from the ledger); not a profile value, so setup() never sees it.
RETRAIN = "retrain"


def names() -> list[str]:
    """The notebooks in `<home>/notebooks`, by name (the run order is `notebook_plan.plan`'s)."""
    return sorted(p.stem for p in paths.notebooks_dir().glob("[0-9][0-9]_*.py"))


def resolve_parameters(**parameters: Any) -> Profile:
    """The validated Profile of a notebook's parameters: `profile` names it (or is a YAML path; None:
    the chosen study, reprolib.notebooks.studies), a parameter that is None takes the profile's
    value, any other overrides it."""
    name = parameters.pop("profile", None)
    name = chosen_profile() if name is None else name
    if not isinstance(name, str):
        raise ReprolibError(f"parameter profile must be str, got {type(name).__name__} {name!r}")
    return load_profile(name, **{k: v for k, v in parameters.items() if v is not None})


def setup(**parameters: Any) -> Profile:
    """The notebooks' validation cell: `resolve_parameters`, and the profile's figures folder made."""
    profile = resolve_parameters(**parameters)
    profile.path("figures").mkdir(parents=True, exist_ok=True)
    return profile


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


def notebook_parameters(declared: set[str], profile: str, name: str = "notebook",
                        retrain: bool = False) -> dict[str, Any]:
    """What papermill injects: the profile (its name or YAML path), no live widgets, and with
    `retrain` (a forced run of a training notebook on shipped results) its RETRAIN switch; every
    other parameter keeps its default, None: the profile's value (`resolve_parameters`)."""
    if "profile" not in declared:
        raise ReprolibError(f"{name}'s parameters cell does not set profile; valid notebooks set profile = \"NAME\" "
                            "there")
    parameters: dict[str, Any] = {"profile": profile}
    if LIVE_WIDGETS in declared:
        parameters[LIVE_WIDGETS] = False
    if retrain and RETRAIN in declared:
        parameters[RETRAIN] = True
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


def execute(name: str, profile_name: str, out_dir: Path, force: bool = False,
            spec: NotebookSpec | None = None) -> tuple[str, float]:
    """Execute one notebook unless its inputs are unchanged; returns (status, seconds).
    `profile_name` is a profile's name or a YAML path; `spec` the notebook's declaration (read if None).

    Long because it is one sequence: hash, skip, convert, execute with progress echoed,
    clean, write.
    """
    import jupytext
    import papermill

    spec = spec or read_spec(name)
    profile_file = profile_path(profile_name)
    profile = load_profile(profile_name)
    out_path = out_dir / f"{name}.ipynb"
    shipped = spec.trains and shipped_results(profile)
    if not force and shipped and out_path.exists():
        return "shipped", 0.0
    if not force and _recorded_hash(out_path) == inputs_hash(spec, profile_file, profile):
        return "unchanged", 0.0
    notebook = jupytext.read(paths.notebooks_dir() / f"{name}.py")
    # A built-in or registered profile by name (the copy holds no machine's path), a user's file by its path.
    injected = str(profile_file) if profile_name.endswith((".yaml", ".yml")) else profile.profile
    # forced on shipped results (make figures FORCE=1): the notebook retrains rather than reports them
    parameters = notebook_parameters(_declared_parameters(notebook), injected, name, retrain=force and shipped)
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
    # Recompute: the hash covers what the notebook wrote.
    clean_executed(executed)
    executed.metadata[HASH_KEY] = inputs_hash(spec, profile_file, profile)
    _write_atomic(executed, out_path)
    return "executed", time.perf_counter() - started


def run_notebooks(profile_name: str, out_dir: str | Path, only: list[str] | None = None,
                  force: bool = False, verbose: bool = True) -> dict[str, tuple[str, float]]:
    """Execute the notebooks in their declared order (writers before readers), or only the named
    ones; `profile_name` is a profile's name or a YAML path. Returns name -> (status, seconds)."""
    load_profile(profile_name)   # checked before anything runs: a known name or a sound file
    available = names()
    if not available:
        raise ReprolibError(f"no notebooks (NN_name.py) in {paths.notebooks_dir()}; run from a reprolib checkout "
                            f"or set {paths.HOME_ENV} to one")
    wanted = set(available) if not only else {check_choice("notebook", n, available) for n in only}
    selected = [spec for spec in plan([read_spec(n) for n in available]) if spec.name in wanted]
    out = Path(out_dir).resolve()   # a folder typed on the command line: from where the user stands
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.running.ipynb"):   # left by a run killed with -9 (any other exit removes its own)
        stale.unlink(missing_ok=True)
    results = {}
    for spec in selected:
        name = spec.name
        results[name] = execute(name, profile_name, out, force=force, spec=spec)
        if verbose:
            status, seconds = results[name]
            note = {"executed": f" in {seconds:.1f} s", "shipped": ": the shipped results stand (FORCE=1 retrains)"}
            print(f"{name:<28} {status}" + note.get(status, ""), flush=True)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help=profile_help())
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
