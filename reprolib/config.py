"""Profiles: one typed dataclass of study settings, YAML files of values.

Every `reprolib/profiles/*.yaml` is a profile named by its file (smoke, embedded, paper,
paper-headline, paper-dryrun, imagenet-lite, smoke-lite, ...): the single source of the numbers.
The names are discovered from those files whenever asked (`profile_names()`: no list of names
in the code), so a new YAML file is a new choice of every `--profile` (`profile_help()`).
The notebooks read the same files (their parameters default to None, the profile's value:
reprolib.notebooks.runner.setup), as do the CLI and the library, so a notebook and a command line
run the same configuration.
Every key is type-checked against the dataclass annotations; unknown keys are errors.

A user's own profile is passed by path (`--profile my/study.yaml`): its `profile:` key must be
its file's stem. Loading it registers the file in $REPROLIB_PROFILES (os.pathsep-separated
YAML paths), which worker processes and Slurm jobs inherit, so they load it by name too.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.devices import DEVICES
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.data.integrity import trust_dryrun_root
from reprolib.models.registry import get_spec
from reprolib.models.registry import names as backbone_names

PROFILE_DIR = paths.PROFILE_DIR       # package data: found beside the code, wherever it is installed
PROFILES_ENV = "REPROLIB_PROFILES"   # user profile files registered by path (inherited by workers and jobs)
_FIRST = ("smoke", "embedded", "paper")   # listed first in messages; the rest alphabetically
PATH_KEYS = ("artifacts", "figures", "data_root")
DATA_INTEGRITY = ("md5", "dryrun")
REPLICATE_SEED_STRIDE = 1000   # replicate r's seeds are seed + 1000 (r - 1): IMP retraining and transfer runs


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed `seed` of ticket replicate `replicate` (1: itself; docs/methods.md s.12)."""
    return int(seed) + REPLICATE_SEED_STRIDE * (int(replicate) - 1)


@dataclass
class Subgrid:
    """Cells run beyond the main grid, on every ticket replicate (an entry of Profile.subgrids;
    docs/methods.md s.12): `targets` (empty: the profile's) x `methods` x the dense model and the
    IMP `levels` x `n_shots`, with seeds 1..`seeds` of each of the first `replicates` replicates
    (0: all of the profile's), each seed moved by replicate_seed so that every (replicate, seed)
    unit has runs of its own. The claims' cells get their replicates and seeds this way, without
    multiplying the whole grid."""

    methods: list[str]
    levels: list[int]
    n_shots: list[int]
    seeds: int
    replicates: int = 0
    targets: list[str] = field(default_factory=list)


@dataclass
class Profile:
    """Everything a study run needs to know; see the YAML files for the values."""

    # What the study is about: no defaults, every profile YAML names them.
    profile: str
    backbone: str                          # reprolib.models registry name
    source: str                            # upstream training set (imagenet = pretrained weights)
    device: str = "auto"                  # auto | cpu | cuda
    workers: int = 0                      # sweep processes; 0 = one per core on CPU, 1 on GPU
    protocol: str = "embedded"            # reprolib.protocols preset for transfer runs
    targets: list[str] = field(default_factory=lambda: ["digits", "glyphs"])
    # Transfer methods of the sweep, each "method" or "method/label_map" (lp has no map).
    methods: list[str] = field(default_factory=lambda: ["lp", "vp/ilm", "vp/flm", "smm/ilm", "full/ilm"])
    levels: list[int] = field(default_factory=lambda: [0, 2, 4, 6, 8])   # IMP ticket levels
    baselines: list[str] = field(default_factory=lambda: ["magnitude", "random"])
    baseline_level: int = 8               # density at which the baselines are compared
    n_shots: list[int] = field(default_factory=lambda: [1, 5, 10, -1])   # -1 = all
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    full_data_seeds: list[int] = field(default_factory=lambda: [1])      # seeds for n_shot = -1
    # Ticket replicates (docs/methods.md s.12): independent IMP runs 1..replicates from the dense
    # model (replicate r >= 2 retrains with seed replicate_seed(seed, r); its own dense model too
    # with tickets.replicate_upstream). The grid above is replicate 1's; `subgrids` adds cells run
    # on every replicate (Subgrid: methods, levels, n_shots, seeds per replicate, [targets, replicates]).
    replicates: int = 1
    subgrids: list[dict[str, Any]] = field(default_factory=list)
    upstream: dict[str, Any] = field(default_factory=dict)               # reprolib.sparsity.upstream recipe
    tickets: dict[str, Any] = field(default_factory=dict)                # reprolib.sparsity recipe
    reprogrammer: dict[str, Any] = field(default_factory=dict)           # reprolib.reprogrammer recipe
    artifacts: str = "artifacts/embedded"  # upstream model, tickets, run records, ledger
    figures: str = "figures/embedded"      # PNG/PDF figures, CSV/Markdown tables
    data_root: str = "data"                # caches and torchvision downloads
    download: bool = False                 # allow torchvision / hub downloads
    # GPU profiles whose grid is run by `make sweep` (or Slurm), not inside notebook 02: false
    # makes notebook 02 report finished / failed / missing runs and the command that completes them.
    trains_in_notebooks: bool = True
    # torch.compile the backbone's forward on CUDA (off by default: the first steps of every run
    # pay the compilation; worth it for long full-data runs). Hashed into the run only when on.
    compile: bool = False
    # Slurm through submitit (reprolib.sweep.slurm.ClusterOptions): partition, account, qos, constraint,
    # gpus_per_node, cpus_per_task, mem_gb, timeout_min, array_parallelism, max_array_size, margin.
    cluster: dict[str, Any] = field(default_factory=dict)
    # md5 | dryrun. `dryrun` (paper-dryrun only) lets torchvision skip the md5 checks of
    # the synthetic files in this profile's marked data_root (reprolib.data.integrity).
    data_integrity: str = "md5"

    def path(self, key: str) -> Path:
        """The artifacts / figures / data_root directory, absolute.

        Relative values are taken from the workbook root (`reprolib.paths.home()`: $REPROLIB_HOME,
        else the checkout you stand in, else the current directory), never from the package.
        """
        check_choice("profile path", key, PATH_KEYS)
        return paths.resolve(getattr(self, key))


def _matches(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is Any:
        return True
    return isinstance(value, annotation)


def check_fields(cls: type, values: dict[str, Any], what: str, prefix: str = "") -> None:
    """Refuse keys that are not fields of the dataclass `cls`, and values of the wrong type.

    The annotations are the single source of truth: `list[int]` wants a list of ints, a
    float field takes ints too, and a bool is never an int. One-line errors, e.g.
    "unknown profile key 'sedes'; valid choices: ..." or "parameter seeds must be list[int], got str '[1]'".
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        check_choice(what, key, names)
        if not _matches(value, hints[key]):
            raise ReprolibError(f"{prefix}{key} must be {_type_name(hints[key])}, got {type(value).__name__} {value!r}")


def validate(values: dict[str, Any]) -> Profile:
    """Build a Profile from a mapping, refusing unknown keys and wrong types in one line."""
    check_fields(Profile, values, "profile key", prefix="parameter ")
    required = [f.name for f in dataclasses.fields(Profile) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        raise ReprolibError(f"profile lacks required key {missing[0]!r}; every profile names: {', '.join(required)}")
    profile = Profile(**values)
    check_choice("profile", profile.profile, profile_names())
    check_choice("device", profile.device, DEVICES)
    check_choice("backbone", profile.backbone, backbone_names())
    check_choice("data_integrity", profile.data_integrity, DATA_INTEGRITY)
    _check_ranges(profile)
    if profile.data_integrity == "dryrun":
        trust_dryrun_root(profile.path("data_root"))
    return profile


def _check_ranges(profile: Profile) -> None:
    """Values of the right type but outside their range: one line naming the value and what is valid."""
    bad_levels = [v for v in profile.levels if v < 0]
    if bad_levels or profile.baseline_level < 0:
        value = bad_levels[0] if bad_levels else profile.baseline_level
        raise ReprolibError(f"ticket level {value} is negative; valid choices: 0 (dense) or a positive IMP level")
    bad_shots = [v for v in profile.n_shots if v == 0 or v < -1]
    if bad_shots:
        raise ReprolibError(f"n_shots value {bad_shots[0]} is invalid; valid choices: -1 (all) or a positive number")
    bad_seeds = [v for v in profile.seeds + profile.full_data_seeds if not 0 <= v < 2 ** 63]
    if bad_seeds:
        raise ReprolibError(f"seed {bad_seeds[0]} is out of range; valid choices: 0 <= seed < 2**63")
    if profile.workers < 0:
        raise ReprolibError(f"workers {profile.workers} is negative; valid choices: 0 (one per core) or more")
    _check_replication(profile)


def subgrids(profile: Profile) -> list[Subgrid]:
    """The profile's `subgrids` entries as Subgrids (replicates 0 -> the profile's, targets [] ->
    the profile's), checked: one line naming the bad value and the valid choices."""
    blocks = []
    for values in profile.subgrids:
        if not isinstance(values, dict):
            raise ReprolibError(f"subgrids entries must be mappings (methods, levels, n_shots, seeds), got {values!r}")
        check_fields(Subgrid, values, "subgrid key", prefix="subgrids.")
        missing = [k for k in ("methods", "levels", "n_shots", "seeds") if k not in values]
        if missing:
            raise ReprolibError(f"subgrid {values} lacks {missing[0]!r}; every subgrid names methods, levels, "
                                "n_shots and seeds")
        block = Subgrid(**values)
        block.replicates = block.replicates or profile.replicates
        block.targets = block.targets or list(profile.targets)
        bad_levels = [v for v in block.levels if v not in [0, *profile.levels]]
        bad_targets = [t for t in block.targets if t not in profile.targets]
        if bad_levels or bad_targets:
            raise ReprolibError(f"subgrid {'level' if bad_levels else 'target'} {(bad_levels or bad_targets)[0]!r} "
                                f"is not one of the profile's; valid choices: "
                                f"{sorted({0, *profile.levels}) if bad_levels else profile.targets}")
        bad_shots = [v for v in block.n_shots if v == 0 or v < -1]
        if bad_shots:
            raise ReprolibError(f"subgrid n_shot {bad_shots[0]} is invalid; valid choices: -1 (all) or a positive number")
        if not 1 <= block.seeds < REPLICATE_SEED_STRIDE or not 1 <= block.replicates <= profile.replicates:
            raise ReprolibError(f"subgrid {values}: seeds must be 1 .. {REPLICATE_SEED_STRIDE - 1} and "
                                f"replicates 1 .. {profile.replicates} (the profile's replicates)")
        blocks.append(block)
    return blocks


def _check_replication(profile: Profile) -> None:
    """Replicates >= 1; more than one needs tickets made here (IMP) and seeds below the stride."""
    if profile.replicates < 1:
        raise ReprolibError(f"replicates {profile.replicates} must be >= 1 (1: one IMP run, no ticket replicates)")
    if profile.replicates > 1 and get_spec(profile.backbone).tickets != "imp":
        raise ReprolibError(f"replicates {profile.replicates}: the {profile.backbone} networks are pruned once from "
                            "pretrained weights, deterministically, so a replicate would be the same network; "
                            "valid choices: replicates: 1")
    big = [v for v in profile.seeds + profile.full_data_seeds if v >= REPLICATE_SEED_STRIDE]
    if profile.replicates > 1 and big:
        raise ReprolibError(f"seed {big[0]} is >= {REPLICATE_SEED_STRIDE}, the seeds of replicate 2; valid choices "
                            f"with replicates: seeds below {REPLICATE_SEED_STRIDE}")
    subgrids(profile)


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:  # list[int] reads better than "list"
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def _registered() -> dict[str, Path]:
    """name -> file of the user profiles registered in $REPROLIB_PROFILES."""
    files = [Path(f) for f in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if f]
    return {f.stem: f for f in files}


def profile_names() -> list[str]:
    """The profiles that load by name: reprolib/profiles/*.yaml, then registered user files."""
    found = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    built_in = [n for n in _FIRST if n in found] + [n for n in found if n not in _FIRST]
    return built_in + [n for n in _registered() if n not in built_in]


def profile_help() -> str:
    """The `--profile` help of every command: the profiles found now, and the path form."""
    return f"{' | '.join(profile_names())}, or the path of your own profile YAML"


def profile_path(name: str) -> Path:
    """The YAML file of a profile name (checked) or of a path ending in .yaml (registered)."""
    check_type("profile", name, str)
    if name.endswith((".yaml", ".yml")):
        return register_profile(Path(name))
    check_choice("profile", name, profile_names())
    built_in = paths.profile_file(name)
    return built_in if built_in.is_file() else _registered()[name]


def register_profile(file: Path) -> Path:
    """Register a user's profile file by path (module docstring); returns its absolute path."""
    file = Path(file).expanduser().resolve()
    if not file.is_file():
        raise ReprolibError(f"profile file {str(file)!r} does not exist; valid: a YAML file or one of "
                            f"{', '.join(profile_names())}")
    clash = paths.profile_file(file.stem)
    if clash.is_file() and clash.resolve() != file:
        raise ReprolibError(f"profile file {str(file)!r} has the name of the built-in profile {file.stem!r}; "
                            "rename the file")
    registered = _registered()
    registered[file.stem] = file
    os.environ[PROFILES_ENV] = os.pathsep.join(str(f) for f in registered.values())
    return file


def load_profile(name: str, **overrides: Any) -> Profile:
    """The named profile's YAML values, with keyword overrides, validated."""
    file = profile_path(name)
    values = parse_profile_file(file)
    if values.get("profile", file.stem) != file.stem:
        raise ReprolibError(f"profile file {file.name} names profile {values['profile']!r}; "
                            f"valid choices: {file.stem!r} (a profile file names itself)")
    values.update(overrides)
    return validate(values)


def parse_profile_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; bad YAML (an unclosed bracket, a tab) or a non-mapping is one line."""
    import yaml

    try:
        with open(path) as f:
            values = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ReprolibError(f"profile file {path} is not valid YAML{where}: {problem}; "
                            "valid: `key: value` lines indented with spaces") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReprolibError(f"cannot read profile file {path}: {err}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ReprolibError(f"profile file {path} holds a YAML {type(values).__name__}; "
                            "valid: a mapping of profile keys (`key: value` lines)")
    return values
