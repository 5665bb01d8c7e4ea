"""Walk a run's resolved description leaf by leaf and change one leaf: for the tests that every field
is hashed or neutral (test_run_description, test_reprogrammer_runs), whatever fields it grows."""

from __future__ import annotations

import json
from typing import Any


def leaves(value: Any, path: tuple = ()):
    """(path, value) of every leaf of a description (dicts are walked; lists, numbers, strings are leaves)."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from leaves(inner, (*path, key))
    else:
        yield path, value


def changed(value: Any) -> Any:
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "'"
    if isinstance(value, list):
        return [*value, 0]
    return {"changed": 1} if isinstance(value, dict) else "changed"


def with_leaf(description: dict, path: tuple, value: Any) -> dict:
    """A copy of `description` with the leaf at `path` set to `value`."""
    copy = json.loads(json.dumps(description))
    inner = copy
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return copy
