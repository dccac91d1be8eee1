"""Last line of defence for secrets: every text the run writes passes through a Redactor.

The token and every substituted environment value are replaced by `***` in console output, the
summary, the report, outputs and the PR comment, whatever code produced the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words and numbers everywhere
PUBLIC_VARS_ENV = "NOTIFLOWS_PUBLIC_VARS"
# Values no one keeps secret; masking them would blot out every "true" in the job's log.
_PLAIN_WORDS = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})


@dataclass(frozen=True)
class SecretPolicy:
    """Which substituted values count as secrets: all of them, except values that are public anyway.

    Public: values too short to mask, plain words such as ``true``, values of the variables named in
    ``NOTIFLOWS_PUBLIC_VARS`` (``*`` for all), and values that occur in a notiflow handle (directory
    names are in git and in every output; masking them would make GitHub drop the outputs).
    """

    public_values: frozenset[str] = frozenset()
    handles: tuple[str, ...] = ()
    all_public: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], handles: Iterable[str] = ()) -> SecretPolicy:
        names = public_var_names(env)
        values = frozenset(env[n] for n in names if n in env)
        return cls(public_values=values, handles=tuple(handles), all_public="*" in names)

    def is_secret(self, value: str) -> bool:
        bare = value.strip()
        if len(bare) < MIN_LENGTH or bare.lower() in _PLAIN_WORDS or self.all_public:
            return False
        if value in self.public_values or bare in self.public_values:
            return False
        return not any(bare in handle for handle in self.handles)


def public_var_names(env: Mapping[str, str]) -> frozenset[str]:
    """The names listed in NOTIFLOWS_PUBLIC_VARS (commas or spaces between them; ``*``: every one)."""
    return frozenset(n for n in re.split(r"[\s,]+", env.get(PUBLIC_VARS_ENV, "")) if n)


def printable(text: str) -> str:
    """`text` safe to encode as UTF-8: bytes that were not UTF-8 (file names) shown as \\xNN."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # os.listdir() keeps undecodable bytes as lone surrogates: show those bytes
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates (e.g. a JSON "\ud800")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_LENGTH:
                continue
            variants.add(secret)
            # Also its JSON-escaped spelling, in case a value is embedded in JSON text.
            variants.add(json.dumps(secret)[1:-1])
            variants.update(line for line in secret.splitlines() if len(line) >= MIN_LENGTH)
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def text(self, value: str) -> str:
        value = printable(value)
        return self._pattern.sub(MASK, value) if self._pattern is not None else value

    def data(self, value: Any) -> Any:
        """A copy of a JSON-like structure with every string redacted (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


class RedactingWriter:
    """A text stream wrapper that redacts whole lines before they reach the real stream."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            self._stream.write(self._redactor.text(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(self._redactor.text(self._pending))
            self._pending = ""
        self._stream.flush()
