"""What each study notebook reads and writes, and from that, what `reprolib notebooks` re-executes.

A notebook declares its inputs and outputs in its Jupytext header, under `reprolib:`

    # ---
    # jupyter:
    #   jupytext: ...
    #   reprolib:
    #     reads:
    #     - ledger
    #     writes:
    #     - figures:few_shot
    #     trains: false
    # ---

`reads` and `writes` name resources of the profile (`RESOURCES`, or `figures:GLOB` for the
figures and tables `<figures>/GLOB.{png,pdf,csv,md}`); `trains: true` marks a notebook that
trains (it stands as shipped when a checkout carries a study's ledger without its run records).
A notebook that declares nothing reads and writes nothing: it is redone when its source or
its profile changes.

The runner orders the notebooks so that a resource's writer runs before its readers (ties by
name), and an executed copy is stale when the hash it records no longer matches: the
notebook's source, the profile YAML, the content of what it reads, and the content of what it
wrote (so a copy whose outputs were deleted, as in a fresh clone with no artifacts, runs again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reprolib import paths
from reprolib.config import Profile, schema, validated
from reprolib.errors import ReprolibError, check_choice

# Library code whose change redraws figures (the commands notebooks 01/02 call skip finished work),
# relative to the folder that holds the package (the checkout, or site-packages).
DRAWING_CODE = ["reprolib/plots", "reprolib/study", "reprolib/sweep/planner.py", "reprolib/published"]
_CODE_ROOT = paths.PACKAGE_DIR.parent
# What a checkout ships of a study, relative to its artifacts folder (.gitignore lets exactly these through):
# the ledger, the tickets table, the Reprogrammer's run records (08 redraws from them) and the
# scores archive (reprolib.scores.archive: a new metric is filled in from it, the explorer draws prompts).
SHIPPED_FILES = ["ledger.csv", "tickets.csv", "reprogrammer/runs/*.json", "scores.npz"]
FIGURES_PREFIX = "figures:"
FIGURE_SUFFIXES = (".png", ".pdf", ".csv", ".md")   # plots.save and plots.save_table


@dataclass(frozen=True)
class Resource:
    """A named input or output of the notebooks: what it is, and how it is fingerprinted."""

    what: str
    files: Callable[[Profile], list[Path]]   # hashed by content
    hashed: bool = True                      # part of a reader's inputs hash (what ships: module docstring)


def _artifacts(profile: Profile) -> Path:
    return profile.path("artifacts")


RESOURCES: dict[str, Resource] = {
    "tickets": Resource("every ticket's sparsity.json (<artifacts>/tickets/<kind>/level_XX)",
                        lambda p: [d / "sparsity.json" for d in paths.ticket_dirs(_artifacts(p))]),
    "tickets_table": Resource("<artifacts>/tickets.csv", lambda p: [paths.tickets_table_file(_artifacts(p))]),
    "ledger": Resource("<artifacts>/ledger.csv", lambda p: [paths.ledger_file(_artifacts(p))]),
    # The power planner's replicate pilots (reprolib.sweep.planner): runs of further ticket replicates.
    "pilots": Resource("bench/pilots/*.csv", lambda p: sorted((paths.home() / "bench" / "pilots").glob("*.csv"))),
    # Not hashed: the records do not ship (a fresh clone would redo its readers), and the ledger, which
    # its readers hash, names every finished run by its record's name (the hash of its configuration).
    "run_records": Resource("the transfer run records <artifacts>/runs/*.json",
                            lambda p: sorted(paths.runs_dir(_artifacts(p)).glob("*.json")), hashed=False),
    "reprogrammer_runs": Resource("<artifacts>/reprogrammer/runs/",
                                  lambda p: sorted(paths.reprogrammer_runs_dir(_artifacts(p)).glob("*.json"))),
    "ledger_code": Resource("reprolib/study/ledger.py (how records become the ledger)",
                            lambda p: [_CODE_ROOT / "reprolib/study/ledger.py"]),
    "drawing_code": Resource("the library code that draws figures and tables",
                             lambda p: [_CODE_ROOT / d for d in DRAWING_CODE]),
}


@schema("key of a notebook's reprolib header", "notebook header ", frozen=True)
class NotebookSpec:
    """One notebook's declaration (its Jupytext header's `reprolib:` mapping)."""

    name: str
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    trains: bool = False


DECLARED_KEYS = ("reads", "writes", "trains")


def check_resource(name: str, notebook: str) -> str:
    """A declared resource name, checked: a RESOURCES key or `figures:GLOB`."""
    if name.startswith(FIGURES_PREFIX):
        glob = name[len(FIGURES_PREFIX):]
        if not glob or "/" in glob:
            raise ReprolibError(f"notebook {notebook} declares {name!r}; valid: figures:STEM or figures:GLOB "
                                "(a file stem in the profile's figures folder, no '/')")
        return name
    return check_choice(f"resource of notebook {notebook}", name, [*RESOURCES, f"{FIGURES_PREFIX}GLOB"])


def read_spec(name: str) -> NotebookSpec:
    """The declaration in `<home>/notebooks/<name>.py`'s header, checked (an empty one if none)."""
    import jupytext

    values = jupytext.read(paths.notebooks_dir() / f"{name}.py").metadata.get("reprolib") or {}
    if not isinstance(values, dict):
        raise ReprolibError(f"notebook {name} declares reprolib: {values!r}; valid: a mapping of reads, writes, trains")
    for key in values:
        check_choice(f"key of notebook {name}'s reprolib header", key, DECLARED_KEYS)
    try:
        spec = validated(NotebookSpec, {"name": name, **values}, f"notebook {name}'s reprolib header")
    except ReprolibError as err:
        raise ReprolibError(f"notebook {name}: {err}") from None
    for resource in spec.reads + spec.writes:
        check_resource(resource, name)
    return spec


def plan(specs: list[NotebookSpec]) -> list[NotebookSpec]:
    """The notebooks in the order they run: each resource's writer before its readers, ties by name.

    Refuses a resource with two writers and a cycle, in one line."""
    writer: dict[str, str] = {}
    for spec in specs:
        for resource in spec.writes:
            if resource in writer:
                raise ReprolibError(f"notebooks {writer[resource]} and {spec.name} both write {resource}; "
                                    "valid: one writer per resource")
            writer[resource] = spec.name
    after = {s.name: {writer[r] for r in s.reads if r in writer and writer[r] != s.name} for s in specs}
    by_name, done, order = {s.name: s for s in specs}, set(), []
    while len(order) < len(specs):
        ready = sorted(n for n in by_name if n not in done and after[n] <= done)
        if not ready:
            stuck = sorted(n for n in by_name if n not in done)
            raise ReprolibError(f"notebooks {', '.join(stuck)} read each other's outputs (a cycle); "
                                "valid: each resource written before it is read")
        done.add(ready[0])
        order.append(by_name[ready[0]])
    return order


def resource_files(resource: str, profile: Profile) -> list[Path]:
    """The files (or folders) a resource names under this profile."""
    if resource.startswith(FIGURES_PREFIX):
        stems = resource[len(FIGURES_PREFIX):]
        return sorted(f for f in profile.path("figures").glob(f"{stems}.*") if f.suffix in FIGURE_SUFFIXES)
    return RESOURCES[resource].files(profile)


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


def resource_digests(resources: list[str], profile: Profile) -> list[str]:
    """One line per file of the resources: its name and content hash (or its name only)."""
    out = []
    for resource in resources:
        hashed = resource.startswith(FIGURES_PREFIX) or RESOURCES[resource].hashed
        out += [f"{resource}:"] + (_file_digests(resource_files(resource, profile)) if hashed else [])
    return out


def inputs_hash(spec: NotebookSpec, profile_file: Path, profile: Profile) -> str:
    """SHA-256 over the notebook source, the profile YAML, what it reads and what it wrote."""
    parts = _file_digests([paths.notebooks_dir() / f"{spec.name}.py", profile_file]) + \
        resource_digests(spec.reads, profile) + ["produced:"] + resource_digests(spec.writes, profile)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def shipped_results(profile: Profile) -> bool:
    """True when the profile's ledger came with the checkout: it exists, but no run record does."""
    artifacts = profile.path("artifacts")
    runs = paths.runs_dir(artifacts)
    return paths.ledger_file(artifacts).exists() and not (runs.is_dir() and any(runs.glob("*.json")))
