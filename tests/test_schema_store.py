"""SchemaStore: which schema is used, and saying so; downloads only ever go to 127.0.0.1 here."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from trickle_server import TrickleServer

from notiflows_deploy.errors import SchemaLoadError
from notiflows_deploy.jsonpos import parse_json
from notiflows_deploy.schema import SCHEMA_URL, bundled_schema
from notiflows_deploy.schema.store import SchemaStore, default_cache_dir

# A schema that differs from the bundled one, so a test can tell which was used.
STRICT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "steps"],
    "properties": {"name": {"const": "Served"}},
}


class _Server:
    def __init__(self, routes: dict[str, tuple[int, bytes]]) -> None:
        self.routes = routes
        self.hits: dict[str, int] = {}
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                status, body = outer.routes.get(self.path, (404, b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server({
        "/schema.json": (200, json.dumps(STRICT).encode()),
        "/array.json": (200, b"[1, 2]"),
        "/broken.json": (200, b"{not json"),
        "/invalid-schema.json": (200, json.dumps({"type": 12}).encode()),
        "/error.json": (500, b"oops"),
        "/remote-ref.json": (200, json.dumps({"$ref": "http://127.0.0.1:9/x.json"}).encode()),
        "/local-ref.json": (200, json.dumps({"properties": {"a": {"$ref": "#/$defs/nowhere"}}}).encode()),
    })
    yield srv
    srv.close()


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 port nobody listens on: connecting fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/schema.json"


def loopback(url: str) -> bool:
    """The test servers' URLs: the store only fetches vendor URLs unless told otherwise."""
    return url.startswith("http://127.0.0.1:")


def names_ok(store: SchemaStore, url: str | None, name: str) -> bool:
    checker, _ = store.checker_for(url)
    return checker.validator.is_valid({"name": name, "steps": []})


def test_no_schema_uses_the_bundled_copy(tmp_path: Path) -> None:
    store = SchemaStore(cache_dir=tmp_path)
    checker, source = store.for_document({"name": "x", "steps": []})
    assert source == "bundled schema"
    assert checker.validator.schema == bundled_schema()


def test_known_url_with_downloads_off_says_so(tmp_path: Path) -> None:
    store = SchemaStore(cache_dir=tmp_path)  # conftest sets NOTIFLOWS_DEPLOY_SCHEMA_FETCH=0
    assert store.fetch is False
    _, source = store.for_document({"$schema": SCHEMA_URL})
    assert source == "bundled schema (download disabled)"


def test_non_http_schema_is_a_note_and_the_bundled_copy(tmp_path: Path) -> None:
    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback)
    _, source = store.checker_for("../schema/notiflow.json")
    assert source.startswith("bundled schema")
    assert store.notes == ["$schema '../schema/notiflow.json' is not an http(s) URL; using the bundled schema"]


def test_download_is_used_cached_and_fetched_once(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base}/schema.json"
    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback)
    checker, source = store.checker_for(url)
    assert source == f"{url} (downloaded)"
    assert checker.validator.schema == STRICT
    assert names_ok(store, url, "Served") and not names_ok(store, url, "Other")
    for _ in range(20):
        assert store.checker_for(url)[0] is checker
    assert server.hits == {"/schema.json": 1}
    cached = tmp_path / "schemas" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"
    assert json.loads(cached.read_text()) == STRICT
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary files left behind


def test_failed_download_falls_back_to_the_cache_then_bundled(tmp_path: Path, server: _Server, dead_url: str) -> None:
    # Fill the cache for dead_url by serving it once under that name.
    good = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback)
    good.checker_for(f"{server.base}/schema.json")
    cache = tmp_path / "schemas"
    src = cache / f"{hashlib.sha256(f'{server.base}/schema.json'.encode()).hexdigest()}.json"
    src.rename(cache / f"{hashlib.sha256(dead_url.encode()).hexdigest()}.json")

    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback, timeout=1.0)
    checker, source = store.checker_for(dead_url)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert source == f"cached copy of {dead_url} from {today}"
    assert checker.validator.schema == STRICT
    assert any("could not use the schema" in note for note in store.notes)

    empty = SchemaStore(cache_dir=tmp_path / "empty", fetch=True, trusted=loopback, timeout=1.0)
    checker, source = empty.checker_for(dead_url)
    assert source == f"bundled schema (offline; {dead_url} unavailable)"
    assert checker.validator.schema == bundled_schema()


def test_cache_is_used_when_downloads_are_off(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base}/schema.json"
    SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback).checker_for(url)
    offline = SchemaStore(cache_dir=tmp_path, fetch=False, trusted=loopback)
    _, source = offline.checker_for(url)
    assert source.startswith(f"cached copy of {url} from ")
    assert server.hits == {"/schema.json": 1}


def test_known_url_offline_is_the_bundled_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str
) -> None:
    monkeypatch.setattr("notiflows_deploy.schema.store.SCHEMA_URL", dead_url)
    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback, timeout=1.0)
    _, source = store.checker_for(dead_url)
    assert source == "bundled schema (offline)"


@pytest.mark.parametrize(
    ("path", "label", "why"),
    [
        ("/array.json", "download is not a JSON Schema", "it is not a JSON object"),
        ("/broken.json", "download is not valid JSON", "it is not valid JSON"),
        ("/invalid-schema.json", "download is not a valid JSON Schema", "it is not a valid JSON Schema"),
        ("/remote-ref.json", "download has an unresolvable $ref", "its $ref 'http://127.0.0.1:9/x.json' cannot"),
        ("/local-ref.json", "download has an unresolvable $ref", "its $ref '#/$defs/nowhere' cannot"),
        ("/error.json", "HTTP 500", "the server answered HTTP 500"),
        ("/missing", "HTTP 404", "the server answered HTTP 404"),
    ],
)
def test_unusable_downloads_are_not_used_or_cached_and_say_why(
    tmp_path: Path, server: _Server, path: str, label: str, why: str
) -> None:
    url = server.base + path
    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback)
    checker, source = store.checker_for(url)
    assert source == f"bundled schema ({label}; {url} unavailable)"
    assert "offline" not in source
    assert checker.validator.schema == bundled_schema()
    assert not (tmp_path / "schemas").exists()
    assert len(store.notes) == 2
    assert store.notes[0].startswith(f"could not use the schema at {url}: {why}")
    assert store.notes[1] == f"no copy of {url} is available; using the bundled schema"
    assert "/x.json" not in server.hits  # a $ref is never fetched


def test_an_unusable_download_falls_back_to_the_cached_copy_and_says_so(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base}/flaky.json"
    server.routes["/flaky.json"] = (200, json.dumps(STRICT).encode())
    SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback).checker_for(url)
    server.routes["/flaky.json"] = (200, json.dumps({"$ref": "#/$defs/nowhere"}).encode())
    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback)
    checker, source = store.checker_for(url)
    assert source.startswith(f"cached copy of {url} from ")
    assert checker.validator.schema == STRICT
    assert store.notes[0] == f"could not use the schema at {url}: its $ref '#/$defs/nowhere' cannot be resolved"
    assert store.notes[1].startswith(f"using the cached copy of {url} from ")
    cached = tmp_path / "schemas" / f"{hashlib.sha256(url.encode()).hexdigest()}.json"
    assert json.loads(cached.read_text()) == STRICT  # the bad download did not replace it


def test_validators_never_fetch_remote_refs(tmp_path: Path, server: _Server) -> None:
    server.routes["/defs.json"] = (200, json.dumps({"type": "string"}).encode())
    path = tmp_path / "remote.json"
    path.write_text(json.dumps({"properties": {"name": {"$ref": f"{server.base}/defs.json"}}}))
    checker, _ = SchemaStore(cache_dir=tmp_path, override=path).checker_for(None)
    (problem,) = checker.check(parse_json('{"name": "x", "steps": []}'), file="f.json")
    assert problem.code == "schema-unusable"
    assert server.hits == {}


@pytest.mark.parametrize("in_headers", [False, True])
def test_a_trickling_server_cannot_stretch_the_download_past_its_deadline(tmp_path: Path, in_headers: bool) -> None:
    trickle = TrickleServer(b" " * 100 + b"{}", path="/schema.json", every=0.2, in_headers=in_headers)
    try:
        store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback, timeout=1.0)
        started = time.monotonic()
        checker, source = store.checker_for(trickle.url)
        elapsed = time.monotonic() - started
    finally:
        trickle.close()
    assert elapsed < 2.5  # one deadline for the whole download, not per socket read
    assert source == f"bundled schema (no answer within 1 s; {trickle.url} unavailable)"
    assert store.notes[0] == f"could not use the schema at {trickle.url}: no complete answer within 1 s"
    assert checker.validator.schema == bundled_schema()


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    url = "https://notiflows.com/schemas/s.json"
    cache = tmp_path / "schemas"
    cache.mkdir()
    (cache / f"{hashlib.sha256(url.encode()).hexdigest()}.json").write_text("{broken")
    store = SchemaStore(cache_dir=tmp_path, fetch=False)
    _, source = store.checker_for(url)
    assert source == f"bundled schema (download disabled; {url} unavailable)"
    assert any("ignored the cached copy" in n for n in store.notes)


def test_override_wins(tmp_path: Path, server: _Server) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(STRICT))
    store = SchemaStore(cache_dir=tmp_path, override=path, fetch=True)
    for ref in (None, SCHEMA_URL, f"{server.base}/schema.json", "local.json"):
        checker, source = store.checker_for(ref)
        assert source == f"--schema {path}"
        assert checker.validator.schema == STRICT
    assert server.hits == {}
    assert store.compile_count == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read"), ("{oops", "not valid JSON"), ("[]", "not a JSON object"),
     ('{"type": 5}', "not a valid JSON Schema"), ("\xff", "cannot be used")],
)
def test_broken_override_is_a_schema_load_error(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    with pytest.raises(SchemaLoadError) as info:
        SchemaStore(cache_dir=tmp_path, override=path)
    assert words in info.value.message
    assert str(path) in info.value.message
    assert info.value.hint


def test_compiled_once_for_a_thousand_documents(tmp_path: Path) -> None:
    store = SchemaStore(cache_dir=tmp_path)
    text = json.dumps({"$schema": SCHEMA_URL, "name": "x", "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0}, {"handle": "end", "type": "end", "position": 1}]})
    for i in range(1000):
        parsed = parse_json(text)
        checker, _ = store.for_document(parsed.value)
        assert checker.check(parsed, file=f"n{i}/notiflow.json") == []
    store.for_document({"name": "no $schema"})  # bundled schema again: same compiled validator
    assert store.compile_count == 1


def test_thread_safe_single_fetch_and_compile(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base}/schema.json"
    store = SchemaStore(cache_dir=tmp_path, fetch=True, trusted=loopback)
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def work() -> None:
        barrier.wait()
        for _ in range(50):
            seen.append(store.checker_for(url)[0])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    assert store.compile_count == 1
    assert server.hits == {"/schema.json": 1}


def test_default_cache_dir_and_fetch_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFLOWS_DEPLOY_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("NOTIFLOWS_DEPLOY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "notiflows-deploy"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "notiflows-deploy"
    monkeypatch.setenv("NOTIFLOWS_DEPLOY_SCHEMA_FETCH", "1")
    assert SchemaStore().fetch is True
    monkeypatch.setenv("NOTIFLOWS_DEPLOY_SCHEMA_FETCH", "0")
    assert SchemaStore().fetch is False
    assert SchemaStore(fetch=True).fetch is True


def test_requests_is_not_imported_until_a_download(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from notiflows_deploy.schema.store import SchemaStore\n"
        "from notiflows_deploy.validate import DocumentChecker\n"
        "SchemaStore(fetch=False).checker_for('https://notiflows.com/schemas/notiflow.json')\n"
        "print('requests' in sys.modules)\n"
    )
    env = {**os.environ, "NOTIFLOWS_DEPLOY_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_sources_lists_what_was_used(tmp_path: Path) -> None:
    store = SchemaStore(cache_dir=tmp_path)
    store.checker_for(None)
    store.checker_for(SCHEMA_URL)
    assert store.sources == ["bundled schema", "bundled schema (download disabled)"]


def test_schema_with_an_unresolvable_ref_is_one_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "remote-ref.json"
    path.write_text(json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                "properties": {"name": {"$ref": "https://example.invalid/defs.json"}}}))
    checker, _ = SchemaStore(cache_dir=tmp_path, override=path).checker_for(None)
    (problem,) = checker.check(parse_json('{"name": "x", "steps": []}'), file="f.json")
    assert problem.code == "schema-unusable"
    assert (problem.line, problem.column) == (1, 1)
