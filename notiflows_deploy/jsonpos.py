"""JSON with source positions: parse fast, locate lazily.

`parse_json` uses the C decoder (fast path for the common, valid case) and refuses duplicate keys,
excessive nesting, the non-standard `NaN`/`Infinity` (also a number too big for a float, such as
`1e400`) and a `\\uD83D` escape that is half of a surrogate pair (a string that is not valid
Unicode cannot be sent): each is an error at the offending token, with a `code` and a `hint`.
Positions are computed only when a problem needs one: `ParsedJson.locate` walks the text once
with a small position-tracking scanner and caches every value's line/column, so a JSON pointer
from a schema error maps back to the exact place in the file; `locate_in_string` goes on to a
character inside a string value, escapes and all. `ParsedJson.with_value` pairs the same text
(and positions) with a derived value, e.g. the document after `${NAME}` substitution.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

MAX_DEPTH = 64

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrtu])*"')  # validity already proven by json.loads
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
# Tokens outside strings, for the error paths only (strings are skipped whole, escapes and all).
_LOOSE_STRING = r'"(?:[^"\\]|\\.)*"'
_BRACKETS = re.compile(_LOOSE_STRING + r"|[\[{]|[\]}]")
_NUMBERS = re.compile(_LOOSE_STRING + r"|-?Infinity|NaN|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # a quick look (it may be an escaped backslash)
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
_OPEN_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*(")?|[\[{]|[\]}]', re.DOTALL)  # a string may lack its closing quote


SYNTAX = "json-syntax"
TOO_DEEP = "json-too-deep"
SURROGATE = "json-surrogate"
_SYNTAX_HINT = "fix the JSON syntax at this position (a missing comma, quote, colon or bracket)"


class JsonSyntaxError(ValueError):
    """Why the text is no usable JSON, where; `code` is json-syntax, json-too-deep or json-surrogate."""

    def __init__(self, message: str, line: int, column: int, *, code: str = SYNTAX, hint: str = _SYNTAX_HINT) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column
        self.code = code
        self.hint = hint


class _BadNumber(ValueError):
    """A number JSON cannot carry (NaN, Infinity, 1e400): raised from the decoder's hooks."""


def _no_constants(name: str) -> Any:
    raise _BadNumber(name)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _BadNumber(literal)
    return value


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
class _Positions:
    """Offsets of every value and key by path; filled on first use, shared by `with_value` copies."""

    values: dict[Path, int] | None = None
    keys: dict[Path, int] = field(default_factory=dict)


@dataclass
class ParsedJson:
    text: str
    value: Any
    # For a derived value (`with_value`): the text as written of each string that differs from the
    # file's (a substituted "${CT}"), and the strings whose final value is not known (a variable unset).
    raw_strings: Mapping[Path, str] = field(default_factory=dict)
    unresolved: frozenset[Path] = frozenset()
    _positions: _Positions = field(default_factory=_Positions, repr=False)

    def with_value(
        self, value: Any, *, raw_strings: Mapping[Path, str] | None = None, unresolved: frozenset[Path] = frozenset()
    ) -> ParsedJson:
        """The same text and positions with another value of the same shape (same paths)."""
        return ParsedJson(self.text, value, dict(raw_strings or {}), unresolved, self._positions)

    def _index(self) -> dict[Path, int]:
        positions = self._positions
        if positions.values is None:
            values: dict[Path, int] = {}
            _Scanner(self.text, values, positions.keys).scan()
            positions.values = values
        return positions.values

    @property
    def _keys(self) -> dict[Path, int]:
        self._index()
        return self._positions.keys

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

    def locate_in_string(self, path: Path, offset: int) -> tuple[int, int]:
        """Line and column of character `offset` (0-based, in the decoded string) of the string at `path`.

        Escapes count as the one character they stand for (`\\n`, `\\"`, `\\u00e9`, a surrogate pair).
        Falls back to `locate(path)` when `path` is not a string in the text.
        """
        values = self._index()
        start = values.get(tuple(path))
        if start is None or not self.text.startswith('"', start):
            return self.locate(path)
        return _line_col(self.text, _raw_offset(self.text, start, offset))


def _raw_offset(text: str, start: int, decoded: int) -> int:
    """Offset in `text` of decoded character `decoded` of the JSON string literal starting at `start`."""
    pos, count = start + 1, 0
    while count < decoded and pos < len(text) and text[pos] != '"':
        if text[pos] != "\\":
            pos += 1
        elif text.startswith("u", pos + 1):
            pos += 12 if _surrogate_pair(text, pos) else 6
        else:
            pos += 2
        count += 1
    return pos


def _surrogate_pair(text: str, pos: int) -> bool:
    """Whether the `\\uXXXX` at `pos` is a high surrogate followed by a `\\uXXXX` low one (one character)."""
    try:
        high = int(text[pos + 2 : pos + 6], 16)
        low = int(text[pos + 8 : pos + 12], 16) if text.startswith("\\u", pos + 6) else -1
    except ValueError:
        return False
    return 0xD800 <= high < 0xDC00 and 0xDC00 <= low < 0xE000


def json_type_name(value: Any) -> str:
    """What a decoded JSON value is, for messages: "a string", "an array", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_json(text: str, *, max_depth: int = MAX_DEPTH) -> ParsedJson:
    """Parse `text`; raise JsonSyntaxError with the position of the first problem."""
    if not text.strip():
        raise JsonSyntaxError("the file is empty; a notiflow.json must hold a JSON object", 1, 1)
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float
        )
    except json.JSONDecodeError as exc:
        message, hint = _explain(exc, text)
        raise JsonSyntaxError(message, exc.lineno, exc.colno, hint=hint) from None
    except _DuplicateKey as exc:
        line, col = _find_duplicate(text, exc.key)
        raise JsonSyntaxError(f"duplicate key {exc.key!r}: JSON keeps only the last one", line, col,
                              hint="remove one of the two, or merge them") from None
    except _BadNumber as exc:
        raise _bad_number(text, str(exc)) from None
    except RecursionError:
        raise _too_deep(text, max_depth) from None
    except ValueError as exc:  # an integer of thousands of digits (int's conversion limit)
        raise _bad_number(text, "", str(exc)) from None
    if _depth(value) > max_depth:
        raise _too_deep(text, max_depth)
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(text)
    return ParsedJson(text, value)


def _refuse_lone_surrogates(text: str) -> None:
    """Raise at the first `\\uXXXX` escape that is half a surrogate pair (in a key or a value).

    The decoder joins a high and a low escape into one character and keeps a lone one as a
    surrogate, which cannot be encoded as UTF-8: the request would fail when it is sent.
    """
    for literal in re.finditer(_LOOSE_STRING, text):
        pending: re.Match[str] | None = None  # a high surrogate waiting for its low half
        for esc in _ESCAPE.finditer(text, literal.start() + 1, literal.end() - 1):
            unit = int(esc.group(1), 16) if esc.group(1) else -1
            if pending is not None:
                if esc.start() == pending.end() and 0xDC00 <= unit < 0xE000:
                    pending = None
                    continue
                raise _lone_surrogate(text, pending)
            if 0xD800 <= unit < 0xDC00:
                pending = esc
            elif 0xDC00 <= unit < 0xE000:
                raise _lone_surrogate(text, esc)
        if pending is not None:
            raise _lone_surrogate(text, pending)


def _lone_surrogate(text: str, escape: re.Match[str]) -> JsonSyntaxError:
    line, column = _line_col(text, escape.start())
    return JsonSyntaxError(
        f"{escape.group(0)} is half of a UTF-16 surrogate pair without its other half: the string is not "
        "valid Unicode and cannot be sent",
        line, column, code=SURROGATE,
        hint="write the character itself (the file is UTF-8), or both halves of the pair, e.g. \\ud83d\\ude00",
    )


def _too_deep(text: str, max_depth: int) -> JsonSyntaxError:
    """The error at the bracket that opens level `max_depth` + 1."""
    depth = 0
    offset = 0
    for m in _BRACKETS.finditer(text):
        token = m.group(0)
        if token in "[{":
            depth += 1
            if depth > max_depth:
                offset = m.start()
                break
        elif token in "]}":
            depth -= 1
    line, column = _line_col(text, offset)
    return JsonSyntaxError(
        f"the JSON is nested more than {max_depth} levels deep (this bracket opens level {max_depth + 1})",
        line, column, code=TOO_DEEP, hint=f"restructure the document: at most {max_depth} levels of [ and {{",
    )


def _bad_number(text: str, literal: str, detail: str = "") -> JsonSyntaxError:
    """The error at the first number literal JSON cannot carry: `literal`, or (when "") one too long."""
    is_bad: Callable[[str], bool] = (
        (lambda token: token == literal) if literal else (lambda token: len(token) > 4000 and token[-1].isdigit())
    )
    offset = next((m.start() for m in _NUMBERS.finditer(text) if m.group(0)[0] != '"' and is_bad(m.group(0))), 0)
    line, column = _line_col(text, offset)
    if literal in ("NaN", "Infinity", "-Infinity"):
        message = f"{literal} is not valid JSON; write a number, or null"
        hint = "JSON has no NaN or Infinity: write a number, or null"
    elif literal:
        message = f"the number {literal[:20]}{'...' if len(literal) > 20 else ''} is too large for JSON"
        hint = "write a smaller number (at most about 1.8e308), or the value as a string"
    else:
        message = f"a number with too many digits ({detail.split(':')[0].lower()})"
        hint = "write a number of at most 4300 digits, or the value as a string"
    return JsonSyntaxError(message, line, column, hint=hint)


def _explain(exc: json.JSONDecodeError, text: str) -> tuple[str, str]:
    """The decoder's complaint in plain words, and a hint."""
    msg = exc.msg
    if not text[exc.pos:].strip() and not msg.startswith("Extra data"):
        return _ended_early(text)
    if msg.startswith("Expecting property name enclosed in double quotes"):
        return ("expected a property name in double quotes (a trailing comma before '}' is not allowed in JSON)",
                "remove the comma before '}', or write the key in double quotes (\"key\", not 'key' or key)")
    if msg.startswith("Expecting value"):
        return ("expected a value here (a trailing comma before ']' or a missing value is not allowed in JSON)",
                "remove the comma before ']', or write the missing value (strings in double quotes)")
    if msg.startswith("Expecting ',' delimiter"):
        return "expected ',' between items (or a closing bracket)", "add the missing ',' or close the bracket"
    if msg.startswith("Expecting ':' delimiter"):
        return "expected ':' after the property name", 'write "key": value'
    if msg.startswith("Invalid control character"):
        return ("a raw control character (e.g. a newline) inside a string; write it as \\n",
                "escape it: \\n for a newline, \\t for a tab")
    if msg.startswith("Unterminated string"):
        return "a string that is never closed", 'add the closing " at the end of the string'
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\uXXXX escape"):
        return (msg[0].lower() + msg[1:], 'write a backslash as \\\\; escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t '
                "and \\uXXXX")
    if msg.startswith("Extra data"):
        return ("unexpected text after the end of the JSON document",
                "a notiflow.json holds one JSON object: remove what follows its closing '}'")
    return (msg[0].lower() + msg[1:] if msg else "invalid JSON"), _SYNTAX_HINT


def _ended_early(text: str) -> tuple[str, str]:
    """The document stops inside a string, an object or an array: say which bracket is still open."""
    open_brackets: list[int] = []
    for m in _OPEN_TOKENS.finditer(text):
        token = m.group(0)
        if token[0] == '"':
            if m.group(1) is None:  # no closing quote: the text ends inside this string
                return "the document ended inside a string", 'close the string with " and the brackets after it'
        elif token in "[{":
            open_brackets.append(m.start())
        elif open_brackets:
            open_brackets.pop()
    if open_brackets:
        line, column = _line_col(text, open_brackets[-1])
        bracket = text[open_brackets[-1]]
        closing = "}" if bracket == "{" else "]"
        return (f"the document ended early: the '{bracket}' at line {line}, column {column} is never closed",
                f"add the missing '{closing}' (and any other closing brackets); was the file cut short?")
    return "the document ended early", "complete the JSON document; was the file cut short?"


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
