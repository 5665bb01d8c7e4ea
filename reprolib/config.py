"""Profiles: one typed dataclass of study settings, YAML files of values.

Every `reprolib/profiles/*.yaml` is a profile named by its file (smoke, embedded, paper,
paper-headline, paper-dryrun, imagenet-lite, smoke-lite, ...): the single source of the numbers.
The names are discovered from those files whenever asked (`profile_names()`: no list of names
in the code), so a new YAML file is a new choice of every `--profile` (`profile_help()`).
The notebooks read the same files (their parameters default to None, the profile's value:
reprolib.notebooks.runner.setup), as do the CLI and the library, so a notebook and a command line
run the same configuration.
Every value is checked by the dataclass's schema (pydantic, strict: `SCHEMA`): types, finite
numbers, ranges, empty or repeated lists, folders that are files; an unknown key, or a key given
twice in the YAML, is named in one line. `data_integrity` is taken from reprolib's own profile
files only (BUILT_IN_ONLY): a user's profile cannot turn a data root's md5 checks off, unless
whoever runs the command names that file in REPROLIB_TRUST_PROFILE (TRUST_ENV; make gpu-check).

A user's own profile is passed by path (`--profile my/study.yaml`): its `profile:` key must be
its file's stem. Loading it registers the file in $REPROLIB_PROFILES (os.pathsep-separated
YAML paths), which worker processes and Slurm jobs inherit, so they load it by name too.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from reprolib import paths
from reprolib.devices import DEVICES
from reprolib.errors import ReprolibError, check_choice, check_type, schema_error
from reprolib.data.catalog import names as dataset_names
from reprolib.data.integrity import trust_dryrun_root
from reprolib.models.registry import get_spec
from reprolib.models.registry import names as backbone_names
from reprolib.records import nearest_folder
from reprolib.scores.archive import CODECS as SCORES_CODECS

PROFILE_DIR = paths.PROFILE_DIR       # package data: found beside the code, wherever it is installed
PROFILES_ENV = "REPROLIB_PROFILES"   # user profile files registered by path (inherited by workers and jobs)
_FIRST = ("smoke", "embedded", "paper")   # listed first in messages; the rest alphabetically
PATH_KEYS = ("artifacts", "figures", "data_root")
DATA_INTEGRITY = ("md5", "dryrun")
# The keys only reprolib's own profile files may set (a user's file or an override is refused):
# `data_integrity: dryrun` turns torchvision's md5 checks off in the profile's data root.
BUILT_IN_ONLY = ("data_integrity",)
TRUST_ENV = "REPROLIB_TRUST_PROFILE"   # the path of one user profile file allowed BUILT_IN_ONLY keys

# The schema every profile, recipe and option is checked against (pydantic): types are strict (a
# bool is no int, "1" is no number; an int is taken for a float), numbers finite, unknown keys refused.
SCHEMA = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
MAX_COUNT = 2 ** 31    # shots, levels, epochs, batch sizes: anything larger is a typo, not a setting
MAX_SEED = 2 ** 63     # torch.Generator.manual_seed takes a 64-bit seed; larger ones overflow
REPLICATE_SEED_STRIDE = 1000   # replicate r's seeds are seed + 1000 (r - 1): IMP retraining and transfer runs


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed `seed` of ticket replicate `replicate` (1: itself; docs/methods.md s.12)."""
    return int(seed) + REPLICATE_SEED_STRIDE * (int(replicate) - 1)


def _seed(value: int) -> int:
    if not 0 <= value < MAX_SEED:
        raise ValueError(f"seed {value} is out of range; valid: 0 .. 2**63-1 (a torch generator seed)")
    return value


def _shots(value: int) -> int:
    if value == 0 or not -1 <= value < MAX_COUNT:
        raise ValueError(f"n_shots value {value} is invalid; valid choices: -1 (all) or 1 .. 2**31-1")
    return value


def choice_of(kind: str, choices: Any) -> AfterValidator:
    """A validator refusing a value outside `choices()` (asked when checked), naming them."""
    def check(value: Any) -> Any:
        try:
            return check_choice(kind, value, choices())
        except ReprolibError as err:
            raise ValueError(str(err)) from None
    return AfterValidator(check)


def _distinct(values: list) -> list:
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"{twice[0]} is listed twice; valid: each value once")
    return values


Seed = Annotated[int, AfterValidator(_seed)]
Shots = Annotated[int, AfterValidator(_shots)]
Count = Annotated[int, Field(ge=1, lt=MAX_COUNT)]            # epochs, batch sizes, sizes: 1 or more
NonNegative = Annotated[int, Field(ge=0, lt=MAX_COUNT)]      # levels, iterations, workers: 0 or more
Positive = Annotated[float, Field(gt=0)]                     # learning rates, scales: finite and > 0
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Distinct = AfterValidator(_distinct)
NonEmpty = Field(min_length=1)


def schema(what: str, prefix: str, frozen: bool = False):
    """Make a class a dataclass checked by its schema (pydantic, `SCHEMA`) whenever it is built
    (`cls(...)`, `dataclasses.replace`), a bad value failing in one line: "unknown `what` 'x';
    valid choices: ..." or "`prefix`lr is float nan; valid: a finite number". Fields, `asdict`,
    `replace` and attribute access are a dataclass's."""
    def make(cls: type) -> type:
        cls = pydantic_dataclass(cls, config=SCHEMA, frozen=frozen)
        built = cls.__init__

        @functools.wraps(built)
        def checked(self, *args: Any, **kwargs: Any) -> None:
            try:
                built(self, *args, **kwargs)
            except ValidationError as err:
                fields = dataclasses.fields(cls)
                required = [f.name for f in fields if f.default is f.default_factory is dataclasses.MISSING]
                raise schema_error(err, what, [f.name for f in fields], prefix, required) from None
        cls.__init__ = checked
        return cls
    return make


@schema("profile key", "profile ")
class Profile:
    """Everything a study run needs to know; see the YAML files for the values."""

    # What the study is about: no defaults, every profile YAML names them.
    profile: Annotated[str, choice_of("profile", lambda: profile_names())]
    backbone: Annotated[str, choice_of("backbone", lambda: backbone_names())]   # reprolib.models registry name
    source: str                            # upstream training set (imagenet = pretrained weights)
    device: Annotated[str, choice_of("device", lambda: DEVICES)] = "auto"   # auto | cpu | cuda
    workers: NonNegative = 0              # sweep processes; 0 = one per core on CPU, 1 on GPU
    protocol: str = "embedded"            # reprolib.protocols preset for transfer runs
    targets: Annotated[list[Annotated[str, choice_of("target", lambda: dataset_names())]], NonEmpty, Distinct] = \
        field(default_factory=lambda: ["digits", "glyphs"])
    # Transfer methods of the sweep, each "method" or "method/label_map" (lp has no map).
    methods: Annotated[list[str], NonEmpty, Distinct] = \
        field(default_factory=lambda: ["lp", "vp/ilm", "vp/flm", "smm/ilm", "full/ilm"])
    levels: Annotated[list[NonNegative], NonEmpty, Distinct] = field(default_factory=lambda: [0, 2, 4, 6, 8])  # IMP levels
    baselines: Annotated[list[str], Distinct] = field(default_factory=lambda: ["magnitude", "random"])
    baseline_level: NonNegative = 8       # density at which the baselines are compared
    n_shots: Annotated[list[Shots], NonEmpty, Distinct] = field(default_factory=lambda: [1, 5, 10, -1])  # -1 = all
    seeds: Annotated[list[Seed], Distinct] = field(default_factory=lambda: [1, 2, 3])
    full_data_seeds: Annotated[list[Seed], Distinct] = field(default_factory=lambda: [1])  # seeds for n_shot = -1
    # Ticket replicates (docs/methods.md s.12): independent IMP runs 1..replicates from the dense
    # model (replicate r >= 2 retrains with seed replicate_seed(seed, r); its own dense model too
    # with tickets.replicate_upstream). The grid above is replicate 1's; `subgrids` adds cells run
    # on every replicate (Subgrid: methods, levels, n_shots, seeds per replicate, [targets, replicates]).
    replicates: Count = 1
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
    # md5 | dryrun. `dryrun` (reprolib's own paper-dryrun only: BUILT_IN_ONLY) lets torchvision skip the
    # md5 checks of the synthetic files in this profile's marked data_root (reprolib.data.integrity).
    data_integrity: Annotated[str, choice_of("data_integrity", lambda: DATA_INTEGRITY)] = "md5"
    # How the study ships its scores: the codec of `<artifacts>/scores.npz` that `ledger` packs where
    # the runs are (reprolib.scores.archive.CODECS: float32, float16, q<b>); "" = no archive.
    ship_scores: Annotated[str, choice_of("ship_scores", lambda: ("", *SCORES_CODECS))] = ""

    def __post_init__(self) -> None:
        """What no single field can say: seeds for the runs the shots ask for, folders that are not files."""
        if any(n != -1 for n in self.n_shots) and not self.seeds:
            raise ReprolibError("profile seeds is []; valid: at least one seed for the few-shot runs")
        if -1 in self.n_shots and not self.full_data_seeds:
            raise ReprolibError("profile full_data_seeds is []; valid: at least one seed for the full-data runs (n_shots -1)")
        for key in PATH_KEYS:   # may not exist yet, but may not be a file or lie under one
            nearest_folder(self.path(key), f"profile {key}")
        _check_replication(self)

    def path(self, key: str) -> Path:
        """The artifacts / figures / data_root directory, absolute.

        Relative values are taken from the workbook root (`reprolib.paths.home()`: $REPROLIB_HOME,
        else the checkout you stand in, else the current directory), never from the package.
        """
        check_choice("profile path", key, PATH_KEYS)
        return paths.resolve(getattr(self, key))


def validated(cls: type, values: Any, where: str) -> Any:
    """`cls(**values)` for a `schema` class, `values` being a profile's mapping named `where`
    (e.g. "upstream"): anything but a mapping is one line too."""
    if not isinstance(values, dict):
        raise ReprolibError(f"{where} is {type(values).__name__} {values!r:.60}; valid: a mapping")
    return cls(**values)


def validate(values: dict[str, Any]) -> Profile:
    """Build a Profile from a mapping, refusing unknown keys, wrong types and values in one line."""
    return validated(Profile, values, "profile")


@schema("subgrid key", "subgrids.")
class Subgrid:
    """Cells run beyond the main grid, on every ticket replicate (an entry of Profile.subgrids;
    docs/methods.md s.12): `targets` (empty: the profile's) x `methods` x the dense model and the
    IMP `levels` x `n_shots`, with seeds 1..`seeds` of each of the first `replicates` replicates
    (0: all of the profile's), each seed moved by replicate_seed so that every (replicate, seed)
    unit has runs of its own. The claims' cells get their replicates and seeds this way, without
    multiplying the whole grid."""

    methods: Annotated[list[str], NonEmpty, Distinct]
    levels: Annotated[list[NonNegative], NonEmpty, Distinct]
    n_shots: Annotated[list[Shots], NonEmpty, Distinct]
    seeds: Count
    replicates: NonNegative = 0
    targets: Annotated[list[str], Distinct] = field(default_factory=list)


def subgrids(profile: Profile) -> list[Subgrid]:
    """The profile's `subgrids` entries as Subgrids (replicates 0 -> the profile's, targets [] ->
    the profile's), checked: one line naming the bad value and the valid choices."""
    blocks = []
    for values in profile.subgrids:
        if not isinstance(values, dict):
            raise ReprolibError(f"subgrids entries must be mappings (methods, levels, n_shots, seeds), got {values!r}")
        block = validated(Subgrid, values, "subgrid")
        block.replicates = block.replicates or profile.replicates
        block.targets = block.targets or list(profile.targets)
        bad_levels = [v for v in block.levels if v not in [0, *profile.levels]]
        bad_targets = [t for t in block.targets if t not in profile.targets]
        if bad_levels or bad_targets:
            raise ReprolibError(f"subgrid {'level' if bad_levels else 'target'} {(bad_levels or bad_targets)[0]!r} "
                                f"is not one of the profile's; valid choices: "
                                f"{sorted({0, *profile.levels}) if bad_levels else profile.targets}")
        if not 1 <= block.seeds < REPLICATE_SEED_STRIDE or not 1 <= block.replicates <= profile.replicates:
            raise ReprolibError(f"subgrid {values}: seeds must be 1 .. {REPLICATE_SEED_STRIDE - 1} and "
                                f"replicates 1 .. {profile.replicates} (the profile's replicates)")
        blocks.append(block)
    return blocks


def _check_replication(profile: Profile) -> None:
    """More than one replicate needs tickets made here (IMP) and seeds below the stride (the schema
    has checked each field: replicates >= 1, n_shots -1 or positive)."""
    if profile.replicates > 1 and get_spec(profile.backbone).tickets != "imp":
        raise ReprolibError(f"replicates {profile.replicates}: the {profile.backbone} networks are pruned once from "
                            "pretrained weights, deterministically, so a replicate would be the same network; "
                            "valid choices: replicates: 1")
    big = [v for v in profile.seeds + profile.full_data_seeds if v >= REPLICATE_SEED_STRIDE]
    if profile.replicates > 1 and big:
        raise ReprolibError(f"seed {big[0]} is >= {REPLICATE_SEED_STRIDE}, the seeds of replicate 2; valid choices "
                            f"with replicates: seeds below {REPLICATE_SEED_STRIDE}")
    subgrids(profile)


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
    # reprolib's own files, or the one file the person running the command names in TRUST_ENV
    # (make gpu-check's paper-headline on the dry-run data): never what a profile says of itself
    built_in = file.parent == PROFILE_DIR or os.environ.get(TRUST_ENV) == str(file.resolve())
    for key in BUILT_IN_ONLY:
        if key in overrides or (key in values and not built_in):
            raise ReprolibError(f"{key} is set by {file if key in values else 'a parameter'}; valid: only reprolib's "
                                f"own profiles set {key} (the dry run's synthetic data root), never a user's")
    values.update(overrides)
    profile = validate(values)
    if profile.data_integrity == "dryrun" and "data_root" not in overrides:
        trust_dryrun_root(profile.path("data_root"))
    return profile


def _unique_key_loader() -> type:
    """yaml.SafeLoader refusing a key given twice in one mapping (YAML would keep the last, silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:   # an unhashable key: yaml's own error names it below
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (first on line {first}); valid: each key once",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def parse_profile_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; bad YAML (an unclosed bracket, a tab, a key given twice) or a
    non-mapping is one line."""
    import yaml

    try:
        with open(path) as f:
            values = yaml.load(f, Loader=_unique_key_loader())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        valid = "" if "valid:" in problem else "; valid: `key: value` lines indented with spaces"
        raise ReprolibError(f"profile file {path} is not valid YAML{where}: {problem}{valid}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReprolibError(f"cannot read profile file {path}: {err}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ReprolibError(f"profile file {path} holds a YAML {type(values).__name__}; "
                            "valid: a mapping of profile keys (`key: value` lines)")
    return values
