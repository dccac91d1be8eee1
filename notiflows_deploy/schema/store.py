"""Decide which JSON Schema checks a notiflow.json, and say which one was used.

Order: a `--schema PATH` override wins. Otherwise a file's `$schema` http(s) URL is downloaded
(once per run, short timeouts) and cached on disk; when that fails, or downloading is off
(NOTIFLOWS_DEPLOY_SCHEMA_FETCH=0), the cached copy is used, then the schema bundled with this
package. No `$schema`, or a `$schema` that is not an http(s) URL, means the bundled schema.

Each distinct schema is compiled once per run (memoised under a lock), so checking a thousand
files costs one compile. `requests` is imported only when a download is attempted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for

from ..errors import SchemaLoadError
from ..validate import DocumentChecker
from . import SCHEMA_URL, bundled_schema

MAX_SCHEMA_BYTES = 5 * 1024 * 1024
FETCH_ENV = "NOTIFLOWS_DEPLOY_SCHEMA_FETCH"
CACHE_ENV = "NOTIFLOWS_DEPLOY_CACHE_DIR"


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
    """A schema that could not be obtained or is not a valid schema; the message says why."""


def _checked(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unusable("it is not a JSON object")
    cls = validator_for(value, default=Draft202012Validator)
    try:
        cls.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise _Unusable(f"it is not a valid JSON Schema: {exc.message} at {where}") from None
    return value


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Unusable(f"it is not valid JSON ({exc})") from None
    return _checked(value)


def _download(url: str, timeout: float) -> dict[str, Any]:
    import requests  # lazy: keeps CLI start-up fast when no download happens

    try:
        with requests.get(
            url,
            timeout=(timeout, timeout),
            headers={"Accept": "application/schema+json, application/json"},
            stream=True,
        ) as response:
            if response.status_code != 200:
                raise _Unusable(f"HTTP {response.status_code}")
            data = response.raw.read(MAX_SCHEMA_BYTES + 1, decode_content=True)
    except requests.Timeout:
        raise _Unusable(f"no answer within {timeout:g} s") from None
    except requests.ConnectionError:
        raise _Unusable("could not connect (offline, DNS or proxy)") from None
    except requests.RequestException as exc:
        raise _Unusable(type(exc).__name__) from None
    if len(data) > MAX_SCHEMA_BYTES:
        raise _Unusable(f"it is larger than {MAX_SCHEMA_BYTES} bytes")
    return _parse(data)


class SchemaStore:
    """Resolves `$schema` values to compiled checkers; one instance per run."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        override: Path | None = None,
        fetch: bool | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.fetch = fetch_enabled_by_env() if fetch is None else fetch
        self.timeout = timeout
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
        reason = "download disabled"
        if self.fetch:
            try:
                schema = _download(ref, self.timeout)
            except _Unusable as exc:
                reason = "offline"
                self.notes.append(f"could not use the schema at {ref}: {exc}")
            else:
                self._write_cache(ref, schema)
                return self._compile(f"url:{ref}", schema), f"{ref} (downloaded)"
        cached = self._read_cache(ref)
        if cached is not None:
            schema, when = cached
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
            cls = validator_for(schema, default=Draft202012Validator)
            validator: Validator = cls(schema)  # no format checker: formats are not needed and cost time
            checker = DocumentChecker(validator)
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
            return _parse(data)
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
