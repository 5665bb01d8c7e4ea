"""The Reprogrammer study's methods by name: one `ReprogrammerMethod` entry each, holding every fact
the study and its figure read about it.

An entry says how figures name the method (`label`), how its eval-set logits are made (`run`: a
function of reprolib.reprogrammer.method_runs, imported when first called so that this registry
stays free of torch), whether it gives one record per residual alpha (`sweeps_alpha`), the alpha
it mixes at when it fixes one (`fixed_alpha`: the plain Reprogrammer is the residual at 0), and
whether it is skipped on a CPU run of a large (open_clip) encoder (`large_encoder_needs_gpu`:
fine-tuning ViT-B-32). Methods sharing one `run` are trained once per target (the Reprogrammer
and its residual variants). reprolib/reprogrammer/study.py asks the entry; nothing else compares
these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reprolib.errors import check_choice


def _run(function: str) -> Callable[..., Any]:
    """method_runs.<function>, imported when first called (this registry stays torch-free)."""
    def run(*args: Any, **kwargs: Any) -> Any:
        from reprolib.reprogrammer import method_runs

        return getattr(method_runs, function)(*args, **kwargs)
    run.__name__ = function
    return run


@dataclass(frozen=True)
class ReprogrammerMethod:
    """One method of the Reprogrammer study (module docstring)."""

    name: str
    label: str                                 # how figures name it
    # (TargetRun, [(record key, alpha to mix at)]) -> ({record key: eval-set logits}, curves)
    run: Callable[..., Any]
    sweeps_alpha: bool = False                 # one record per residual alpha
    fixed_alpha: float | None = None           # the alpha it always mixes at (None: its record's)
    large_encoder_needs_gpu: bool = False      # skipped on a CPU run of the open_clip encoder


_REPROGRAMMER = _run("reprogrammer_logits")   # one training serves the plain and the residual variants
_METHODS: dict[str, ReprogrammerMethod] = {method.name: method for method in (
    ReprogrammerMethod("zero_shot", "zero-shot", _run("zero_shot_logits")),
    ReprogrammerMethod("linear_probe", "linear probe", _run("linear_probe_logits")),
    ReprogrammerMethod("finetune", "fine-tuning", _run("finetune_logits"), large_encoder_needs_gpu=True),
    ReprogrammerMethod("reprogrammer", "Reprogrammer", _REPROGRAMMER, fixed_alpha=0.0),
    ReprogrammerMethod("residual_reprogrammer", "residual", _REPROGRAMMER, sweeps_alpha=True),
)}
METHODS = tuple(_METHODS)


def get_method(name: str) -> ReprogrammerMethod:
    """The entry of Reprogrammer-study method `name`; unknown: a one-line error listing the choices."""
    return _METHODS[check_choice("reprogrammer method", name, METHODS)]


def mixing_alpha(method: str, alpha: float | None) -> float | None:
    """The alpha a record of `method` at `alpha` mixes the Reprogrammer with zero-shot at."""
    fixed = get_method(method).fixed_alpha
    return alpha if fixed is None else fixed
