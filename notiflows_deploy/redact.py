"""Last line of defence for secrets: every text the run writes passes through a Redactor.

The token and every substituted environment value are replaced by `***` in console output, the
summary, the report, outputs and the PR comment, whatever code produced the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words and numbers everywhere


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
        return self._pattern.sub(MASK, value) if self._pattern is not None else value

    def data(self, value: Any) -> Any:
        """A copy of a JSON-like structure with every string redacted (keys too)."""
        if self._pattern is None:
            return value
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
