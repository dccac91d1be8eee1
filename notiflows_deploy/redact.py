"""Last line of defence for secrets: every text the run writes passes through a Redactor.

The token and every substituted environment value are replaced by `***` in console output, the
summary, the report, outputs and the PR comment, whatever code produced the text. So are the
spellings a server may echo a value in (`variants`: JSON, URL and HTML escaping), which
``::add-mask::`` registers too (github.masking).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words and numbers everywhere
# Values read out of the server's text (secretpaths) are only redacted from a length where a chance
# match in ordinary text is unlikely: the server's text is anyone's with dashboard access.
LEARNED_MIN_LENGTH = 6
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


# encodeURIComponent (JavaScript) leaves these alone; Python's quote leaves "/" (or nothing, safe="").
_URL_SAFE_SETS = ("", "/", "-_.!~*'()")
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_GO_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;", "+": "&#43;"}
_HTML_REFERENCED = frozenset("&<>\"'+/=`")  # escaped by some HTML encoder (Go, OWASP, lodash), "_" by none


def _url_forms(text: str) -> set[str]:
    """Percent-encoded spellings (safe sets of common encoders; `+` or %20 for a space; hex in either case)."""
    forms: set[str] = {text.replace(" ", "+")}
    for safe in _URL_SAFE_SETS:
        forms.update((quote(text, safe=safe), quote_plus(text, safe=safe)))
    return forms | {_HEX_ESCAPE.sub(lambda m: m.group(0).lower(), f) for f in forms}


def _html_forms(text: str) -> set[str]:
    """HTML-escaped spellings: Python's, Go's (``&#43;`` for ``+``), and each character some escaper
    turns into a reference (`_HTML_REFERENCED`, non-ASCII) as a decimal or hex character reference."""
    forms = {html.escape(text), html.escape(text, quote=False), "".join(_GO_HTML.get(c, c) for c in text)}
    forms |= {f.encode("ascii", "xmlcharrefreplace").decode("ascii") for f in forms}
    referenced = [c in _HTML_REFERENCED or not c.isascii() for c in text]
    forms.add("".join(f"&#{ord(c)};" if ref else c for c, ref in zip(text, referenced, strict=True)))
    forms.add("".join(f"&#x{ord(c):x};" if ref else c for c, ref in zip(text, referenced, strict=True)))
    return forms


def _json_forms(text: str) -> set[str]:
    """Inside a JSON string: ASCII-only (``\\u00e9``) or not, with or without ``\\/`` for ``/``."""
    forms = {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    return forms | {f.replace("/", "\\/") for f in forms}


_MIN_BASE64 = 8  # shorter base64 forms of a short secret's tail would match ordinary words


def _base64_forms(text: str) -> set[str]:
    """Base64 of `text`, and of it without its first one or two characters (``base64(user:pass)``),
    each cut before the characters that depend on what follows (the runner's own encoders do the same)."""
    forms: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(text[shift:].encode("utf-8", "surrogatepass")).decode("ascii")
        if "=" in encoded:
            encoded = encoded.rstrip("=")[:-1]
        if len(encoded) >= _MIN_BASE64:
            forms.update((encoded, encoded.replace("+", "-").replace("/", "_")))
    return forms


_ENCODINGS: tuple[Callable[[str], set[str]], ...] = (_json_forms, _url_forms, _html_forms)


def variants(secret: str, *, with_base64: bool = False) -> frozenset[str]:
    """`secret` and the spellings a server may echo it in, each of its lines too; none shorter than
    `MIN_LENGTH`. The one list the Redactor and ``::add-mask::`` (github.masking) both use; base64 forms
    (`with_base64`) only for the Redactor, since the runner masks those of every masked value itself."""
    if len(secret.strip()) < MIN_LENGTH:
        return frozenset()
    parts = {secret, *(line for line in secret.splitlines() if len(line.strip()) >= MIN_LENGTH)}
    found = set(parts)
    for part in parts:
        for encode in _ENCODINGS:
            found.update(encode(part))
    if with_base64:
        found.update(_base64_forms(secret))
    return frozenset(v for v in found if len(v.strip()) >= MIN_LENGTH)


def defuse_legacy_commands(text: str) -> str:
    """`text` without ``##[``, which starts a legacy workflow command anywhere in a line the runner
    reads (ActionCommand.TryParse, on stdout and stderr): ``##[stop-commands]x`` in a server's error
    code would silence every later command. For lines outside a ``::stop-commands::`` fence."""
    return text.replace("##[", "# #[")


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of `words` (all of one short length), as a trie: one alternation of
    hundreds of literals is tried branch by branch at every position, a trie only where a prefix fits."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})

    def branch(node: dict[str, Any]) -> str:
        alternatives = [re.escape(char) + branch(child) for char, child in sorted(node.items())]
        if len(alternatives) <= 1:
            return "".join(alternatives)
        return "(?:" + "|".join(alternatives) + ")"

    return branch(root)


class Redactor:
    """Replaces every variant of every secret (`variants`, with base64) by MASK, the longest first where
    several start at one place. Variants are found by their first MIN_LENGTH characters (a trie regex),
    then checked whole: as fast as one value would be, however many variants there are."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found: set[str] = set()
        for secret in secrets:
            found.update(variants(secret, with_base64=True))
        self._by_prefix: dict[str, list[str]] = {}
        for value in sorted(found, key=len, reverse=True):
            self._by_prefix.setdefault(value[:MIN_LENGTH], []).append(value)
        self._pattern = re.compile(_trie_pattern(self._by_prefix)) if found else None

    def text(self, value: str) -> str:
        value = printable(value)
        if self._pattern is None:
            return value
        parts: list[str] = []
        done = at = 0
        while (match := self._pattern.search(value, at)) is not None:
            start = match.start()
            hit = next((v for v in self._by_prefix[match.group()] if value.startswith(v, start)), None)
            if hit is None:
                at = start + 1
                continue
            parts += (value[done:start], MASK)
            done = at = start + len(hit)
        parts.append(value[done:])
        return "".join(parts)

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
