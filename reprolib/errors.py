"""User-facing errors: one line that names the bad value and the valid choices.

The CLI prints a ReprolibError as `error: <message>` and exits with status 2, and a notebook
cell shows the same one line (IPython renders an exception through its `_render_traceback_`);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ReprolibError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always exactly one line

    def _render_traceback_(self) -> list[str]:
        """What IPython (a notebook cell) shows for it, instead of the traceback: the one line."""
        return [f"{type(self).__name__}: {self}"]


class UnsafeFile(ReprolibError):
    """A data or weights file reprolib will not read: it would run code, or is not what it claims.
    Never taken for a missing file (no fallback, no download over it)."""


def check_choice(kind: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return `value` if it is one of `choices`, else raise naming it and the choices."""
    choices = list(choices)
    if value not in choices:
        valid = ", ".join(str(c) for c in choices)
        raise ReprolibError(f"unknown {kind} {value!r}; valid choices: {valid}")
    return value


def check_type(name: str, value: Any, expected: type | tuple[type, ...]) -> Any:
    """Return `value` if it is an instance of `expected` (bool is not an int here)."""
    types = expected if isinstance(expected, tuple) else (expected,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        wanted = " or ".join(t.__name__ for t in types)
        raise ReprolibError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}")
    return value



# How a schema (pydantic) complaint reads in one line: what is valid instead.
_VALID = {"int_type": "an integer", "float_type": "a number", "string_type": "a string", "bool_type": "true or false",
          "list_type": "a list", "dict_type": "a mapping", "finite_number": "a finite number",
          "int_parsing": "an integer", "float_parsing": "a number", "bool_parsing": "true or false",
          "int_from_float": "an integer", "tuple_type": "a list"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_MISSING = ("missing", "missing_argument", "missing_keyword_only_argument")


def _valid(problem: dict[str, Any]) -> str:
    """What a schema complaint says is valid instead: "an integer", ">= 1", "at least 1 item(s)"."""
    kind, ctx = problem["type"], problem.get("ctx") or {}
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind]} {next(iter(ctx.values()))}"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} item(s)"
    return _VALID.get(kind, problem["msg"].removeprefix("Input should be ").lower())


def schema_error(err: Any, what: str, names: Iterable[str] = (), prefix: str | None = None,
                 required: Iterable[str] = ()) -> ReprolibError:
    """One line for a pydantic ValidationError `err` of `what` ("profile key", "Slurm option", ...):
    an unknown key first (naming the valid `names`), then the first wrong value (named `prefix` +
    its key, e.g. "upstream.lr"; `prefix` defaults to `what` and a space), then a missing key (naming
    the `required` ones)."""
    problems = sorted(err.errors(), key=lambda e: (e["type"] not in _UNKNOWN, e["type"] in _MISSING))
    first = problems[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    kind, value = first["type"], first.get("input")
    if kind in _UNKNOWN:
        return ReprolibError(f"unknown {what} {where!r}; valid choices: {', '.join(names)}")
    if kind in _MISSING:
        return ReprolibError(f"{what} {where!r} is missing; required: {', '.join(required)}")
    subject = f"{what} {where}" if prefix is None else f"{prefix}{where}"
    if kind == "value_error":   # a validator's own sentence
        return ReprolibError(f"{subject}: {(first.get('ctx') or {}).get('error', first['msg'])}")
    return ReprolibError(f"{subject} is {type(value).__name__} {value!r:.60}; valid: {_valid(first)}")


def option_type(annotation: Any, option: str) -> Any:
    """An argparse `type=` reading a command-line value as `annotation`, a pydantic type with its
    constraints (e.g. Annotated[int, Field(ge=1)]); a bad value is one line naming the option:
    "--runs-per-gpu is '0'; valid: >= 1"."""
    def parse(text: str) -> Any:
        from pydantic import ConfigDict, TypeAdapter, ValidationError

        try:
            return TypeAdapter(annotation, config=ConfigDict(allow_inf_nan=False)).validate_strings(text)
        except ValidationError as err:
            problem = err.errors()[0]
            if problem["type"] == "value_error":   # a validator's own sentence
                raise ReprolibError(f"{option}: {(problem.get('ctx') or {}).get('error')}") from None
            raise ReprolibError(f"{option} is {text!r}; valid: {_valid(problem)}") from None
    parse.__name__ = option.lstrip("-")
    return parse
