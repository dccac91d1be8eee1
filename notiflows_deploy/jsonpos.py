"""JSON with source positions: parse fast, locate lazily.

`parse_json` uses the C decoder (fast path for the common, valid case) and refuses duplicate keys
and excessive nesting. Positions are computed only when a problem needs one: `ParsedJson.locate`
walks the text once with a small position-tracking scanner and caches every value's line/column,
so a JSON pointer from a schema error maps back to the exact place in the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

MAX_DEPTH = 64

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrtu])*"')  # validity already proven by json.loads
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


class JsonSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _depth(value: Any) -> int:
    # Iterative, so a hostile document cannot exhaust the Python stack here.
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
    return deepest


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass
class ParsedJson:
    text: str
    value: Any
    _values: dict[Path, int] | None = field(default=None, repr=False)
    _keys: dict[Path, int] = field(default_factory=dict, repr=False)

    def _index(self) -> dict[Path, int]:
        if self._values is None:
            self._values = {}
            _Scanner(self.text, self._values, self._keys).scan()
        return self._values

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value at `path` (or of its key when `key`).

        A path that does not exist (a missing property) falls back to its nearest existing parent.
        """
        values = self._index()
        probe = tuple(path)
        if key and probe in self._keys:
            return _line_col(self.text, self._keys[probe])
        while probe not in values and probe:
            probe = probe[:-1]
        return _line_col(self.text, values.get(probe, 0))


def parse_json(text: str, *, max_depth: int = MAX_DEPTH) -> ParsedJson:
    """Parse `text`; raise JsonSyntaxError with the position of the first problem."""
    if not text.strip():
        raise JsonSyntaxError("the file is empty; a notiflow.json must hold a JSON object", 1, 1)
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(_explain(exc), exc.lineno, exc.colno) from None
    except _DuplicateKey as exc:
        line, col = _find_duplicate(text, exc.key)
        raise JsonSyntaxError(f"duplicate key {exc.key!r}: JSON keeps only the last one", line, col) from None
    except RecursionError:
        raise JsonSyntaxError(f"the JSON is nested more than {max_depth} levels deep", 1, 1) from None
    if _depth(value) > max_depth:
        raise JsonSyntaxError(f"the JSON is nested more than {max_depth} levels deep", 1, 1)
    return ParsedJson(text, value)


def _explain(exc: json.JSONDecodeError) -> str:
    msg = exc.msg
    if msg.startswith("Expecting property name enclosed in double quotes"):
        return "expected a property name in double quotes (a trailing comma before '}' is not allowed in JSON)"
    if msg.startswith("Expecting value"):
        return "expected a value here (a trailing comma before ']' or a missing value is not allowed in JSON)"
    if msg.startswith("Expecting ',' delimiter"):
        return "expected ',' between items (or a closing bracket)"
    if msg.startswith("Invalid control character"):
        return "a raw control character (e.g. a newline) inside a string; write it as \\n"
    if msg.startswith("Extra data"):
        return "unexpected text after the end of the JSON document"
    return msg[0].lower() + msg[1:] if msg else "invalid JSON"


def _find_duplicate(text: str, key: str) -> tuple[int, int]:
    """Position of the second occurrence of `key` within one object."""
    offsets: dict[Path, int] = {}
    keys: dict[Path, int] = {}
    scanner = _Scanner(text, offsets, keys, duplicate=key)
    try:
        scanner.scan()
    except _DuplicateKey:
        return _line_col(text, scanner.duplicate_offset)
    return 1, 1


class _Scanner:
    """Records the offset of every value (and key) by JSON path. Assumes valid JSON."""

    def __init__(
        self, text: str, values: dict[Path, int], keys: dict[Path, int], duplicate: str | None = None
    ) -> None:
        self.text = text
        self.values = values
        self.keys = keys
        self.duplicate = duplicate
        self.duplicate_offset = 0

    def _ws(self, pos: int) -> int:
        m = _WS.match(self.text, pos)
        return m.end() if m else pos

    def scan(self) -> None:
        text = self.text
        # Explicit stack of (container path, kind, next index/seen keys) instead of recursion.
        pos = self._ws(0)
        stack: list[tuple[Path, str, Any]] = []
        path: Path = ()
        while True:
            self.values[path] = pos
            ch = text[pos] if pos < len(text) else ""
            if ch == "{":
                pos = self._ws(pos + 1)
                if text[pos] == "}":
                    pos += 1
                else:
                    stack.append((path, "o", set()))
                    pos, path = self._key(pos, stack)
                    continue
            elif ch == "[":
                pos = self._ws(pos + 1)
                if text[pos] == "]":
                    pos += 1
                else:
                    stack.append((path, "a", [0]))
                    path = (*path, 0)
                    continue
            elif ch == '"':
                m = _STRING.match(text, pos)
                pos = m.end() if m else len(text)
            else:
                m = _SCALAR.match(text, pos)
                pos = m.end() if m else pos + 1
            # after a value: close containers or move to the next sibling
            while True:
                if not stack:
                    return
                pos = self._ws(pos)
                parent, kind, state = stack[-1]
                if text[pos] == ",":
                    pos = self._ws(pos + 1)
                    if kind == "o":
                        pos, path = self._key(pos, stack)
                    else:
                        state[0] += 1
                        path = (*parent, state[0])
                    break
                pos += 1  # the closing } or ]
                stack.pop()

    def _key(self, pos: int, stack: list[tuple[Path, str, Any]]) -> tuple[int, Path]:
        parent, _, seen = stack[-1]
        m = _STRING.match(self.text, pos)
        end = m.end() if m else pos + 2
        key = json.loads(self.text[pos:end])
        if self.duplicate is not None and key == self.duplicate and key in seen:
            self.duplicate_offset = pos
            raise _DuplicateKey(key)
        seen.add(key)
        path = (*parent, key)
        self.keys[path] = pos
        pos = self._ws(end)
        pos = self._ws(pos + 1)  # the ':'
        return pos, path
