"""Decide which JSON Schema checks a notiflow.json, and say which one was used.

Order: a `--schema PATH` override wins. Otherwise a file's `$schema` URL on the vendor's own
hosts (https://notiflows.com/schemas/... or https://www.notiflows.com/schemas/...) is downloaded
(once per run, within one overall deadline) and cached on disk; when that fails, or downloading
is off (NOTIFLOWS_DEPLOY_SCHEMA_FETCH=0), the cached copy is used, then the schema bundled with
this package. No `$schema`, or any other `$schema` (another host, plain http, not a URL), means the
bundled schema, and a note says the URL was ignored: a file must not choose which schema checks it
(a `{"type": "object"}` somewhere would switch validation off) nor make CI fetch an address of its
choosing. The notes and the source label say what really happened (HTTP 404, not JSON, offline, ...).

A downloaded or cached schema is used only if it is a valid JSON Schema (its metaschema), every
`$ref` in it resolves without the network, and a trial validation runs: one broken download must
not mark every notiflow invalid. Validators never fetch remote `$ref`s (jsonschema's default
would, with a warning). "integer" means a JSON integer without a fraction: 3.0 is refused (it
would be sent as 3.0), as are booleans. "pattern" follows ECMA-262, as JSON Schema says: `$` is
the end of the string (Python's `re` would also accept a final newline: "email_1\\n").

Each distinct schema is compiled once per run (memoised under a lock), so checking a thousand
files costs one compile. `requests` is imported only when a download is attempted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, extend, validator_for
from jsonschema_specifications import REGISTRY as _METASCHEMAS  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from ..errors import SchemaLoadError
from ..validate import DocumentChecker
from . import SCHEMA_URL, bundled_schema

MAX_SCHEMA_BYTES = 5 * 1024 * 1024
FETCH_ENV = "NOTIFLOWS_DEPLOY_SCHEMA_FETCH"
CACHE_ENV = "NOTIFLOWS_DEPLOY_CACHE_DIR"
_CHUNK = 64 * 1024
# The only places a `$schema` URL is fetched from: the vendor's own hosts, over https, under /schemas/.
VENDOR_SCHEMA_HOSTS = frozenset({"notiflows.com", "www.notiflows.com"})
VENDOR_SCHEMA_PATH = "/schemas/"
METASCHEMAS: Registry[Any] = _METASCHEMAS  # the draft metaschemas, offline: `$ref`s to them resolve
# Documents a usable schema must be able to check without failing (not: without errors).
_TRIALS: tuple[Any, ...] = (
    {},
    {"name": "trial", "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
         "template": {"channel_type": "email", "data": {"subject": "s", "content_type": "html", "body": "b"}}},
        {"handle": "end", "type": "end", "position": 2},
    ]},
)


def default_cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "notiflows-deploy"


def fetch_enabled_by_env() -> bool:
    return os.environ.get(FETCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _Unusable(Exception):
    """A schema that could not be obtained or is not a usable schema.

    The message says why in a sentence; `label` says it in a few words for the source label of a
    download ("HTTP 404", "offline", "download is not valid JSON").
    """

    def __init__(self, message: str, label: str) -> None:
        super().__init__(message)
        self.label = label


def is_vendor_schema_url(url: str) -> bool:
    """Is `url` a schema on the vendor's own hosts (https, notiflows.com or www., path under /schemas/)?

    Strict on purpose: no user info, no explicit port, no `.`/`..` segments or backslashes, also
    percent-encoded, so that nothing that merely starts like the vendor's URL passes.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, a bad IPv6 literal
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or host not in VENDOR_SCHEMA_HOSTS or port is not None:
        return False
    if parts.netloc.lower() != host:  # user info ("notiflows.com@elsewhere") or an empty port
        return False
    path = unquote(parts.path)
    segments = path.split("/")
    return (path.startswith(VENDOR_SCHEMA_PATH) and "\\" not in path
            and not any(seg in (".", "..") for seg in segments))


def _is_integer(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def ecma_pattern(pattern: str) -> str:
    """`pattern` with every `$` anchor (outside a character class, not escaped) as `\\Z`.

    JSON Schema patterns are ECMA-262, whose `$` (without the multiline flag) is the end of the
    input; Python's `$` also matches before a final newline, so "email_1\\n" would pass ^[a-z_0-9]+$.
    """
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            out.append("\\Z")
            continue
        out.append(char)
    return "".join(out)


@lru_cache(maxsize=512)
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(ecma_pattern(pattern))


def _pattern(validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """The "pattern" keyword with ECMA-262 anchors (jsonschema's own uses Python's `re.search` as is)."""
    if validator.is_type(instance, "string") and not _compiled_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _strict(cls: type[Validator]) -> type[Validator]:
    """`cls` with "integer" meaning an int only (jsonschema also counts 3.0) and ECMA `$` in patterns."""
    checker = cls.TYPE_CHECKER.redefine("integer", _is_integer)
    strict: type[Validator] = extend(  # type: ignore[no-untyped-call]
        cls, validators={"pattern": _pattern}, type_checker=checker
    )
    return strict


def _validator(schema: dict[str, Any]) -> Validator:
    cls = _strict(validator_for(schema, default=Draft202012Validator))
    # No format checker (formats are not needed and cost time); a registry that never downloads.
    return cls(schema, registry=METASCHEMAS)


def _checked(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unusable("it is not a JSON object", "download is not a JSON Schema")
    cls = validator_for(value, default=Draft202012Validator)
    try:
        cls.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise _Unusable(
            f"it is not a valid JSON Schema: {exc.message} at {where}", "download is not a valid JSON Schema"
        ) from None
    return value


def _unresolvable_ref(schema: dict[str, Any]) -> str | None:
    """The first `$ref` in `schema` that cannot be resolved offline, or None."""
    root = Resource.from_contents(schema, default_specification=DRAFT202012)
    base = root.id() or ""
    registry: Registry[Any] = METASCHEMAS.with_resource(base, root).crawl()
    stack: list[tuple[Resource[Any], str]] = [(root, base)]
    while stack:
        resource, uri = stack.pop()
        contents = resource.contents
        ref = contents.get("$ref") if isinstance(contents, dict) else None
        if isinstance(ref, str):
            try:
                registry.resolver(base_uri=uri).lookup(ref)
            except Unresolvable:
                return ref
        for sub in resource.subresources():
            sub_id = sub.id()
            stack.append((sub, urljoin(uri, sub_id) if sub_id else uri))
    return None


def _usable(value: Any) -> dict[str, Any]:
    """`value` if it is a schema that can check notiflows; else _Unusable saying why."""
    schema = _checked(value)
    try:
        ref = _unresolvable_ref(schema)
        if ref is not None:
            raise _Unusable(f"its $ref {ref!r} cannot be resolved", "download has an unresolvable $ref")
        validator = _validator(schema)
        for trial in _TRIALS:
            for _ in validator.iter_errors(trial):
                pass
    except _Unusable:
        raise
    except Exception as exc:  # anything a broken schema makes jsonschema raise
        raise _Unusable(
            f"it cannot be applied ({type(exc).__name__}: {exc})", "download is not a usable JSON Schema"
        ) from None
    return schema


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Unusable(f"it is not valid JSON ({exc})", "download is not valid JSON") from None


def _parse(data: bytes) -> dict[str, Any]:
    return _usable(_json(data))


def _download(url: str, timeout: float) -> dict[str, Any]:
    """The schema at `url`; `timeout` bounds the whole download (connecting, headers and body).

    Socket timeouts only bound each read, so a server trickling a byte at a time could hold the
    run for ever: the request runs in a daemon thread that is abandoned (and told to stop) at the deadline.
    """
    deadline = time.monotonic() + timeout
    outcome: list[bytes | BaseException] = []
    done, cancel = threading.Event(), threading.Event()

    def work() -> None:
        try:
            outcome.append(_fetch(url, timeout, deadline, cancel))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="schema-download", daemon=True).start()
    if not done.wait(timeout):
        cancel.set()
        raise _Unusable(f"no complete answer within {timeout:g} s", f"no answer within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return _parse(result)


def _fetch(url: str, timeout: float, deadline: float, cancel: threading.Event) -> bytes:
    import requests  # lazy: keeps CLI start-up fast when no download happens

    late = _Unusable(f"no complete answer within {timeout:g} s", f"no answer within {timeout:g} s")
    try:
        with requests.get(
            url,
            timeout=(timeout, timeout),
            headers={"Accept": "application/schema+json, application/json"},
            stream=True,
        ) as response:
            if response.status_code != 200:
                raise _Unusable(f"the server answered HTTP {response.status_code}", f"HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_SCHEMA_BYTES:
                if cancel.is_set() or time.monotonic() > deadline:
                    raise late
                chunk = response.raw.read1(_CHUNK, decode_content=True)  # whatever has arrived, at least a byte
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except requests.Timeout:
        raise late from None
    except requests.ConnectionError:
        raise _Unusable("could not connect (offline, DNS or proxy)", "offline") from None
    except requests.RequestException as exc:
        raise _Unusable(f"the download failed ({type(exc).__name__})", "download failed") from None
    if size > MAX_SCHEMA_BYTES:
        raise _Unusable(f"it is larger than {MAX_SCHEMA_BYTES} bytes", "download is too large")
    return b"".join(chunks)


class SchemaStore:
    """Resolves `$schema` values to compiled checkers; one instance per run."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        override: Path | None = None,
        fetch: bool | None = None,
        timeout: float = 3.0,
        trusted: Callable[[str], bool] = is_vendor_schema_url,
    ) -> None:
        """`trusted`: which `$schema` URLs may be fetched (or read from the cache); tests widen it to 127.0.0.1."""
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.trusted = trusted
        self.fetch = fetch_enabled_by_env() if fetch is None else fetch
        self.timeout = timeout  # for the whole download of one schema
        self.compile_count = 0
        self.notes: list[str] = []  # things worth telling the user (failed downloads, ignored $schema)
        self._lock = threading.Lock()
        self._resolved: dict[str | None, tuple[DocumentChecker, str]] = {}
        self._compiled: dict[str, DocumentChecker] = {}
        self._override: tuple[dict[str, Any], str] | None = None
        if override is not None:
            self._override = (self._load_override(override), f"--schema {override}")

    # -- public -------------------------------------------------------------------------------

    def for_document(self, document: Any) -> tuple[DocumentChecker, str]:
        """The checker for a decoded notiflow.json, chosen by its `$schema`."""
        ref = document.get("$schema") if isinstance(document, dict) else None
        return self.checker_for(ref if isinstance(ref, str) else None)

    def checker_for(self, schema_ref: str | None) -> tuple[DocumentChecker, str]:
        """(checker, source) for a `$schema` value; `source` says in words which schema is used."""
        with self._lock:
            if schema_ref not in self._resolved:
                self._resolved[schema_ref] = self._resolve(schema_ref)
            return self._resolved[schema_ref]

    @property
    def sources(self) -> list[str]:
        """Every distinct schema source used so far, for the run's notes."""
        with self._lock:
            return sorted({source for _, source in self._resolved.values()})

    # -- resolution (called with the lock held) -------------------------------------------------

    def _resolve(self, ref: str | None) -> tuple[DocumentChecker, str]:
        if self._override is not None:
            schema, source = self._override
            return self._compile("override", schema), source
        if ref is None:
            return self._bundled(), "bundled schema"
        if not ref.startswith(("http://", "https://")):
            self.notes.append(f"$schema {ref!r} is not an http(s) URL; using the bundled schema")
            return self._bundled(), f"bundled schema ($schema {ref!r} ignored)"
        if not self.trusted(ref):
            self.notes.append(
                f"$schema {ref!r} was ignored (not fetched): only schemas on https://notiflows.com/schemas/ are "
                "downloaded; the bundled schema is used. To check against another schema, pass --schema PATH"
            )
            return self._bundled(), f"bundled schema ($schema {ref!r} ignored: not a notiflows.com schema URL)"
        reason = "download disabled"
        if self.fetch:
            try:
                schema = _download(ref, self.timeout)
            except _Unusable as exc:
                reason = exc.label
                self.notes.append(f"could not use the schema at {ref}: {exc}")
            else:
                self._write_cache(ref, schema)
                return self._compile(f"url:{ref}", schema), f"{ref} (downloaded)"
        cached = self._read_cache(ref)
        if cached is not None:
            schema, when = cached
            if self.fetch:
                self.notes.append(f"using the cached copy of {ref} from {when} instead")
            return self._compile(f"url:{ref}", schema), f"cached copy of {ref} from {when}"
        if ref == SCHEMA_URL:
            return self._bundled(), f"bundled schema ({reason})"
        self.notes.append(f"no copy of {ref} is available; using the bundled schema")
        return self._bundled(), f"bundled schema ({reason}; {ref} unavailable)"

    def _bundled(self) -> DocumentChecker:
        return self._compile("bundled", bundled_schema())

    def _compile(self, key: str, schema: dict[str, Any]) -> DocumentChecker:
        checker = self._compiled.get(key)
        if checker is None:
            checker = DocumentChecker(_validator(schema))
            self._compiled[key] = checker
            self.compile_count += 1
        return checker

    def _load_override(self, path: Path) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SchemaLoadError(
                f"cannot read the schema file {path}: {exc.strerror or exc}",
                hint="check the --schema path",
            ) from None
        try:
            return _checked(_json(data))
        except _Unusable as exc:
            raise SchemaLoadError(
                f"the schema file {path} cannot be used: {exc}",
                hint="point --schema at a JSON Schema document (draft 2020-12)",
            ) from None

    # -- disk cache -----------------------------------------------------------------------------

    def _cache_path(self, url: str) -> Path:
        return self.cache_dir / "schemas" / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()}.json"

    def _read_cache(self, url: str) -> tuple[dict[str, Any], str] | None:
        path = self._cache_path(url)
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
        except OSError:
            return None
        try:
            schema = _parse(data)
        except _Unusable as exc:
            self.notes.append(f"ignored the cached copy of {url}: {exc}")
            return None
        return schema, datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d")

    def _write_cache(self, url: str, schema: dict[str, Any]) -> None:
        path = self._cache_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary file and rename: a concurrent run never reads half a schema.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(schema, handle)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.notes.append(f"could not cache the schema from {url} in {path.parent}: {exc}")

