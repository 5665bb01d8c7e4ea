"""The on-disk layout: where the workbook lives and where each kind of result goes.

This is the one module that knows folder and file names; everything else asks it.

The workbook root ("home") is where a study's results land:
1. `$REPROLIB_HOME`, when set (relative values are taken from the current directory);
2. else the nearest of the current directory and its parents that is a workbook: a
   reprolib checkout (it has `reprolib/profiles/`) or a folder holding a `.reprolib-home`
   marker file, so that a notebook kernel started in `notebooks/` writes where `make` does;
3. else the current directory.
Never the package's own location: after `pip install .` that is site-packages.

A profile's relative paths (`artifacts`, `figures`, `data_root`) resolve against home.
Under a profile's artifacts folder:

    tickets/<kind>/level_XX/{model.pth, mask.pth, sparsity.json}   one ticket per folder (replicate 1)
    tickets/replicate_RR/<kind>/level_XX/...                       ticket replicate RR >= 2 (other IMP seeds)
    tickets/imported/<name>/{model.pth, mask.pth, sparsity.json}   a ticket made elsewhere
    runs/<id>.json, runs/<id>.npz, runs/<id>.scores.npz             transfer run records
    ledger.csv, tickets.csv                                        the tidy tables
    reprogrammer/encoder.pth, reprogrammer/runs/                   the Reprogrammer study

Under a profile's data root: dataset caches, `torch_hub/` and `open_clip/` weights. The
profile YAMLs and published tables are package data, found beside this file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reprolib.errors import ReprolibError

HOME_ENV = "REPROLIB_HOME"
HOME_MARKER = ".reprolib-home"
PACKAGE_DIR = Path(__file__).resolve().parent
PROFILE_DIR = PACKAGE_DIR / "profiles"
PUBLISHED_DIR = PACKAGE_DIR / "published"
LEDGER_NAME = "ledger.csv"
TICKETS_TABLE_NAME = "tickets.csv"
_LEVEL_DIR = re.compile(r"level_(\d+)$")
_REPLICATE_DIR = re.compile(r"replicate_(\d+)$")


def is_workbook(directory: Path) -> bool:
    """True for a reprolib checkout or a folder marked with a `.reprolib-home` file."""
    return (directory / "reprolib" / "profiles").is_dir() or (directory / HOME_MARKER).is_file()


def home() -> Path:
    """The workbook root, absolute (see the module doc for the resolution order)."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if is_workbook(d)), here)


def resolve(path: str | os.PathLike) -> Path:
    """`path` made absolute: `~` expanded, relative paths taken from the workbook root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else home() / p


def profile_file(name: str) -> Path:
    """The YAML file of profile `name` (package data; the caller checks the name)."""
    return PROFILE_DIR / f"{name}.yaml"


def notebooks_dir() -> Path:
    """`<home>/notebooks`: the study's notebook sources (NN_name.py)."""
    return home() / "notebooks"


def executed_notebooks_dir(profile_name: str) -> Path:
    """`<home>/notebooks/executed/<profile>`: papermill's executed copies."""
    return notebooks_dir() / "executed" / profile_name


def default_data_dir() -> Path:
    """`<home>/data`: dataset caches when no root or profile is given."""
    return home() / "data"


def torch_hub_dir(data_root: str | os.PathLike) -> Path:
    """Where torchvision's ImageNet checkpoints are cached under a data root."""
    return Path(data_root) / "torch_hub"


def open_clip_dir(data_root: str | os.PathLike) -> Path:
    """Where open_clip's pretrained weights are cached under a data root."""
    return Path(data_root) / "open_clip"


# ---- under a profile's artifacts folder --------------------------------------------------

def tickets_root(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/tickets`."""
    return Path(artifacts) / "tickets"


def ticket_dir(artifacts: str | os.PathLike, kind: str, level: int, replicate: int = 1) -> Path:
    """`<artifacts>/tickets/<kind>/level_XX`, or `tickets/replicate_RR/<kind>/level_XX` for ticket
    replicate RR >= 2 (another IMP run; docs/methods.md s.12). The caller checks `kind`."""
    root = tickets_root(artifacts) if int(replicate) == 1 else tickets_root(artifacts) / f"replicate_{int(replicate):02d}"
    return root / kind / f"level_{int(level):02d}"


def ticket_dirs(artifacts: str | os.PathLike) -> list[Path]:
    """Every ticket folder with a sparsity.json (written last, so: every complete one), sorted;
    replicate 1's first, then each further replicate's."""
    root = tickets_root(artifacts)
    return sorted(p.parent for p in root.glob("*/level_*/sparsity.json")) + \
        sorted(p.parent for p in root.glob("replicate_*/*/level_*/sparsity.json"))


def ticket_of(directory: str | os.PathLike) -> tuple[str, int]:
    """(kind, level) of a ticket folder `.../tickets/[replicate_RR/]<kind>/level_XX`."""
    directory = Path(directory)
    match = _LEVEL_DIR.match(directory.name)
    if match is None:
        raise ReprolibError(f"{directory} is not a ticket folder; valid ones are <artifacts>/tickets/<kind>/level_XX")
    return directory.parent.name, int(match.group(1))


def replicate_of(directory: str | os.PathLike) -> int:
    """The ticket replicate of a ticket folder: RR under `tickets/replicate_RR/`, else 1."""
    match = _REPLICATE_DIR.match(Path(directory).parent.parent.name)
    return int(match.group(1)) if match else 1


IMPORTED = "imported"   # tickets/imported/<name>: checkpoints made elsewhere (`tickets import`)
_TICKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def imported_ticket_dir(artifacts: str | os.PathLike, name: str) -> Path:
    """`<artifacts>/tickets/imported/<name>`; a name is letters, digits, '.', '_', '-' (no path)."""
    if not isinstance(name, str) or not _TICKET_NAME.match(name):
        raise ReprolibError(f"bad ticket name {name!r}; valid names: letters, digits, '.', '_', '-' "
                            "(at most 64, starting with a letter or digit)")
    return tickets_root(artifacts) / IMPORTED / name


def imported_ticket_dirs(artifacts: str | os.PathLike) -> list[Path]:
    """Every complete imported ticket folder (its sparsity.json is written last), sorted."""
    return sorted(p.parent for p in (tickets_root(artifacts) / IMPORTED).glob("*/sparsity.json"))


def runs_dir(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/runs`: one `<id>.json` record (+ `<id>.npz`, `<id>.scores.npz`) per transfer run."""
    return Path(artifacts) / "runs"


def features_dir(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/features`: cached LP features, `<key>.pt` (reprolib.transfer.feature_cache)."""
    return Path(artifacts) / "features"


def run_state_file(runs: str | os.PathLike, run_id: str) -> Path:
    """`<runs>/<id>.npz`: the learned prompt or head of run `run_id`."""
    return Path(runs) / f"{run_id}.npz"


def ledger_file(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/ledger.csv`."""
    return Path(artifacts) / LEDGER_NAME


def tickets_table_file(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/tickets.csv`."""
    return Path(artifacts) / TICKETS_TABLE_NAME


def reprogrammer_dir(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/reprogrammer`: the stand-in encoder and the study's records."""
    return Path(artifacts) / "reprogrammer"


def reprogrammer_runs_dir(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/reprogrammer/runs`."""
    return reprogrammer_dir(artifacts) / "runs"


def encoder_file(artifacts: str | os.PathLike) -> Path:
    """`<artifacts>/reprogrammer/encoder.pth`: the cached stand-in text-image encoder."""
    return reprogrammer_dir(artifacts) / "encoder.pth"
