"""``::add-mask::`` for secrets, issued before anything else prints.

The runner redacts a masked value from every later log line of the job. Values are sent escaped
(``%0A``) so a multi-line secret is masked whole; each of its lines is masked too, and so is every
spelling a server may echo it in (`redact.variants`: JSON, URL and HTML escaping), the same list the
run's Redactor uses. Strings shorter than `MIN_LENGTH` are not masked: masking "a" or "1" would redact
every such character in the log. The module remembers what it masked so outputs can refuse to carry a
secret.

Only the run's own secrets come here (the token, substituted environment values): values read out of
the server's text are redacted by the Redactor alone (see runner.SecretSink.learn), or whoever edits a
notiflow in the dashboard could make the job mask any text and lose its step outputs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from notiflows_deploy.redact import MIN_LENGTH, variants

_masked: set[str] = set()


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def mask(value: str | None, stream: TextIO | None = None) -> bool:
    """Mask `value` for the rest of the job. Returns False (silently) for empty or short values."""
    if value is None:
        return False
    value = value.strip("\r\n")
    if len(value.strip()) < MIN_LENGTH:
        return False
    out = stream if stream is not None else sys.stdout
    lines = [value]
    if "\n" in value or "\r" in value:
        parts = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        lines += [part for part in parts if len(part.strip()) >= MIN_LENGTH]
    lines += sorted(variants(value) - set(lines))  # the whole value and its lines first, as before
    for item in lines:
        if item in _masked:
            continue
        out.write(f"::add-mask::{_escape(item)}\n")
        _masked.add(item)
    out.flush()
    return True


def mask_many(values: Iterable[str | None], stream: TextIO | None = None) -> int:
    return sum(mask(v, stream) for v in values)


def masked_values() -> frozenset[str]:
    return frozenset(_masked)


def contains_masked(text: str) -> bool:
    return any(secret in text for secret in _masked)


def reset() -> None:
    """Forget what was masked (tests only: the runner's masks last for the whole job)."""
    _masked.clear()
