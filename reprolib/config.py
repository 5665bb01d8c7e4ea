"""Profiles: one typed dataclass of study settings, four YAML files of values.

`reprolib/profiles/{smoke,embedded,paper,paper-dryrun,imagenet-lite,smoke-lite}.yaml` are the single source of the numbers.
The same files are passed to papermill (`-f`) as notebook parameters, and read here by
the CLI and the library, so a notebook and a command line run the same configuration.
Every key is type-checked against the dataclass annotations; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.devices import DEVICES
from reprolib.errors import ReprolibError, check_choice
from reprolib.models.registry import names as backbone_names

PROFILE_DIR = paths.PROFILE_DIR       # package data: found beside the code, wherever it is installed
PROFILES = ("smoke", "embedded", "paper", "paper-dryrun", "imagenet-lite", "smoke-lite")
PATH_KEYS = ("artifacts", "figures", "data_root")


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
    upstream: dict[str, Any] = field(default_factory=dict)               # reprolib.sparsity.upstream recipe
    tickets: dict[str, Any] = field(default_factory=dict)                # reprolib.sparsity recipe
    reprogrammer: dict[str, Any] = field(default_factory=dict)           # reprolib.reprogrammer recipe
    artifacts: str = "artifacts/embedded"  # upstream model, tickets, run records, ledger
    figures: str = "figures/embedded"      # PNG/PDF figures, CSV/Markdown tables
    data_root: str = "data"                # caches and torchvision downloads
    download: bool = False                 # allow torchvision / hub downloads

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
    check_choice("profile", profile.profile, PROFILES)
    check_choice("device", profile.device, DEVICES)
    check_choice("backbone", profile.backbone, backbone_names())
    return profile


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:  # list[int] reads better than "list"
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def load_profile(name: str, **overrides: Any) -> Profile:
    """The named profile's YAML values, with keyword overrides, validated."""
    import yaml

    check_choice("profile", name, PROFILES)
    with open(paths.profile_file(name)) as f:
        values = yaml.safe_load(f) or {}
    values.update(overrides)
    return validate(values)
