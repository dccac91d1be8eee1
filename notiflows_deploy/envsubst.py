"""`${NAME}` environment-variable substitution, pure (no I/O, no os.environ).

Syntax, applied to every string value of a notiflow.json (never to keys, never inside `$schema`
or `__meta`) and to the text of every extracted file:

* ``${NAME}`` is replaced by the value of NAME, where NAME matches ``[A-Za-z_][A-Za-z0-9_]*``.
  A variable set to the empty string substitutes the empty string; an unset one is an error
  (``env-unset``), reported once per place it is used, and the text is left unchanged.
* ``$${`` is the escape: it produces a literal ``${`` and starts no reference. To send the text
  ``${HOME}`` to Notiflows, write ``$${HOME}``; to send ``Total: ${{ data.amount }}`` (a dollar
  sign followed by a Liquid tag), write ``Total: $${{ data.amount }}``. ``escape`` does this
  for any text, so ``substitute(escape(t), env).text == t`` always holds.
* Any other ``${`` (not followed by a valid name and ``}``) is an error (``env-syntax``), so a
  typo such as ``${API-URL}`` or ``${NAME`` is never sent silently.
* A ``$`` not followed by ``{`` (``$5``, ``$NAME``, ``$$``) is plain text.
* One thing cannot be written: a ``$`` directly before a reference (``$${X}`` is the escape).
  Put the dollar sign into the variable's value instead.

Values are returned (`Substitution.values`) so callers can mask them; never put one into a
message.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
# Leftmost match wins, so the escape `$${` is seen before the `${` it contains.
_TOKEN = re.compile(r"\$\$\{|\$\{(?:(" + NAME_PATTERN + r")\})?")

UNSET = "env-unset"
SYNTAX = "env-syntax"


@dataclass(frozen=True)
class EnvIssue:
    """One problem in a text: `offset` is where its ``${`` starts (0-based, in characters)."""

    code: str  # UNSET or SYNTAX
    offset: int
    name: str = ""  # the variable (UNSET) or a short excerpt of the bad reference (SYNTAX)

    def message(self) -> str:
        if self.code == UNSET:
            return f"environment variable {self.name} is not set (referenced as ${{{self.name}}})"
        return f"invalid variable reference {self.name!r}: expected ${{NAME}} with NAME made of letters, digits, _"

    def hint(self) -> str:
        if self.code == UNSET:
            return (
                f"set {self.name} in the workflow step's env: (e.g. {self.name}: ${{{{ secrets.{self.name} }}}}) "
                f"or remove the ${{{self.name}}} reference"
            )
        if self.name.startswith("${{"):
            return "to write a literal dollar sign before a Liquid tag, write $${{ (e.g. $${{ data.amount }})"
        return "write $${ for a literal ${"


@dataclass(frozen=True)
class Substitution:
    text: str
    values: frozenset[str]  # every non-empty substituted value (empty strings cannot be masked)
    names: frozenset[str]  # every variable substituted
    issues: tuple[EnvIssue, ...]


_NOTHING = frozenset[str]()


def substitute(text: str, env: Mapping[str, str]) -> Substitution:
    """Replace every ``${NAME}`` in `text` from `env`; see the module docstring for the syntax.

    Unset variables are reported once per distinct name (at the first use) and left as written.
    """
    if "${" not in text:  # the common case: nothing to do
        return Substitution(text, _NOTHING, _NOTHING, ())
    out: list[str] = []
    values: set[str] = set()
    names: set[str] = set()
    issues: list[EnvIssue] = []
    unset_seen: set[str] = set()
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "$${":
            out.append("${")
            continue
        name = m.group(1)
        if name is None:
            issues.append(EnvIssue(SYNTAX, m.start(), _excerpt(text, m.start())))
            out.append(token)
            continue
        value = env.get(name)
        if value is None:
            if name not in unset_seen:
                unset_seen.add(name)
                issues.append(EnvIssue(UNSET, m.start(), name))
            out.append(token)
            continue
        names.add(name)
        if value:
            values.add(value)
        out.append(value)
    out.append(text[pos:])
    return Substitution("".join(out), frozenset(values), frozenset(names), tuple(issues))


def expand_only(text: str, env: Mapping[str, str], names: frozenset[str]) -> str:
    """`text` with only the variables in `names` substituted (their values escaped, see `escape`), so
    `substitute(expand_only(text, env, names), env)` equals `substitute(text, env)`."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return escape(env[name]) if name in names and name in env else m.group(0)

    return _TOKEN.sub(one, text)


def escape(text: str) -> str:
    """The text that `substitute` turns back into `text` (every ``${`` written as ``$${``)."""
    return text.replace("${", "$${")


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of `offset` in `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _excerpt(text: str, start: int) -> str:
    # The document's own text, never a substituted value: safe to show.
    end = text.find("}", start + 2, start + 40)
    snippet = text[start : end + 1] if end != -1 else text[start : start + 20]
    return snippet.split("\n", 1)[0]


# --- reading values back out of a substituted text ----------------------------------------------

EXTRACT_BUDGET = 20_000  # search steps; past it the text counts as not matching (the caller hides it)
MAX_PARTS = 400  # literal texts and variables in one template (the search recurses once per part)


@dataclass(frozen=True)
class _Var:
    name: str


def _parts(raw: str) -> list[str | _Var]:
    """`raw` as literal texts (as `substitute` writes them) and variables; adjacent literals merged."""
    parts: list[str | _Var] = []
    pos = 0

    def literal(text: str) -> None:
        if not text:
            return
        if parts and isinstance(parts[-1], str):
            parts[-1] += text
        else:
            parts.append(text)

    for m in _TOKEN.finditer(raw):
        literal(raw[pos : m.start()])
        pos = m.end()
        name = m.group(1)
        if m.group(0) == "$${":
            literal("${")
        elif name is None:
            literal(m.group(0))  # invalid reference: `substitute` leaves it as written
        else:
            parts.append(_Var(name))
    literal(raw[pos:])
    return parts


def masked_template(raw: str, mask: str = "***") -> str:
    """What `substitute(raw, env)` gives with every variable's value shown as `mask`."""
    return "".join(p if isinstance(p, str) else mask for p in _parts(raw))


def extract_values(raw: str, text: str, *, budget: int = EXTRACT_BUDGET) -> dict[str, str] | None:
    """Values that make `substitute(raw, values).text == text`, by variable name, or None when there are none.

    As ``re.fullmatch`` of `raw` with each ``${NAME}`` a lazy ``(.*?)`` (a repeated NAME a backreference),
    DOTALL, but without its exponential worst case: without a repeated name only the leftmost placement of
    each literal is tried (it finds a match whenever one exists, in linear time); with one, the search is
    exhaustive and stops after `budget` steps (long comparisons count as several), answering None.
    Ambiguous splits (``${A}${B}``) give one answer (the lazy regex's); every answer reproduces `text`.
    """
    parts = _parts(raw)
    if len(parts) > MAX_PARTS:
        return None
    names = [p.name for p in parts if isinstance(p, _Var)]
    search = _Search(parts, text, budget, exhaustive=len(set(names)) != len(names))
    try:
        found = search.match(0, 0)
    except _OverBudget:
        return None
    return {name: text[start:end] for name, (start, end) in search.bound.items()} if found else None


class _OverBudget(Exception):
    pass


class _Search:
    """Backtracking over where each variable ends, shortest first (what lazy groups do)."""

    CHUNK = 256  # characters compared or copied per budget step

    def __init__(self, parts: list[str | _Var], text: str, budget: int, *, exhaustive: bool) -> None:
        self.parts, self.text, self.left, self.exhaustive = parts, text, budget, exhaustive
        self.bound: dict[str, tuple[int, int]] = {}  # name -> its span in text
        self.seen: dict[str, list[int]] = {}  # literal -> its occurrences found so far, ascending
        self.cursor: dict[str, int] = {}  # literal -> where finding more of them goes on

    def spend(self, length: int = 0) -> None:
        self.left -= 1 + length // self.CHUNK
        if self.left < 0:
            raise _OverBudget

    def match(self, i: int, pos: int) -> bool:
        text, parts = self.text, self.parts
        self.spend()
        if i == len(parts):
            return pos == len(text)
        part = parts[i]
        if isinstance(part, str):
            self.spend(len(part))
            return text.startswith(part, pos) and self.match(i + 1, pos + len(part))
        if part.name in self.bound:  # a backreference
            start, end = self.bound[part.name]
            self.spend(end - start)
            return text.startswith(text[start:end], pos) and self.match(i + 1, pos + end - start)
        for end in self.ends(i + 1, pos):
            self.bound[part.name] = (pos, end)
            if self.match(i + 1, end):
                return True
            del self.bound[part.name]
            if not self.exhaustive:  # leftmost placement failed: no other one can succeed
                return False
        return False

    def ends(self, following: int, pos: int) -> Iterator[int]:
        """Where a variable starting at `pos` may end, shortest first, given the part after it."""
        text, parts = self.text, self.parts
        if following == len(parts):
            yield len(text)
            return
        after = parts[following]
        if isinstance(after, _Var):
            yield from range(pos, len(text) + 1)
            return
        if following == len(parts) - 1:  # the last literal is anchored at the end of the text
            end = len(text) - len(after)
            if end >= pos and text.endswith(after):
                yield end
            return
        if not self.exhaustive:
            at = text.find(after, pos)
            if at != -1:
                yield at
            return
        yield from self.occurrences(after, pos)

    def occurrences(self, literal: str, pos: int) -> Iterator[int]:
        """Occurrences of `literal` from `pos` on; the text is scanned once per literal, whatever the retries."""
        seen = self.seen.setdefault(literal, [])
        index = bisect.bisect_left(seen, pos)
        while True:
            if index < len(seen):
                yield seen[index]
                index += 1
                continue
            cursor = self.cursor.get(literal, 0)
            if cursor > len(self.text):
                return
            at = self.text.find(literal, cursor)
            self.cursor[literal] = len(self.text) + 1 if at == -1 else at + 1
            if at == -1:
                return
            self.spend()
            seen.append(at)
            index = bisect.bisect_left(seen, pos, lo=index)  # the scan may start before `pos`
