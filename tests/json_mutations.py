"""Every place in a JSON document, and the document with one of them replaced (test helper for fuzzing)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

JsonPath = tuple[str | int, ...]
# What each value is replaced by in turn: every JSON type, and the usual wrong ones.
REPLACEMENTS: tuple[Any, ...] = ([], {}, None, 1.5, True, "x")


def json_paths(value: Any, prefix: JsonPath = ()) -> Iterator[JsonPath]:
    """The path of `value` itself and of everything inside it, depth first."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_paths(child, (*prefix, index))


def replaced(document: Any, path: JsonPath, new: Any) -> Any:
    """A deep copy of `document` with the value at `path` replaced by (a copy of) `new`."""
    if not path:
        return copy.deepcopy(new)
    out = copy.deepcopy(document)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = copy.deepcopy(new)
    return out
