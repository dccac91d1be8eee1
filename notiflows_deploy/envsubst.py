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

import re
from collections.abc import Mapping
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
