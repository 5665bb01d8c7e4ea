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
