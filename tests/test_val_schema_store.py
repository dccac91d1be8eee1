"""A file's `$schema` cannot choose its own schema: only the vendor's schema URLs are fetched."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from notiflows_deploy.jsonpos import parse_json
from notiflows_deploy.runner import SchemaDispatch
from notiflows_deploy.schema import SCHEMA_URL, bundled_schema
from notiflows_deploy.schema import store as store_module
from notiflows_deploy.schema.store import SchemaStore, is_vendor_schema_url

PERMISSIVE = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
INVALID_DOC = json.dumps({"name": "x", "active": "maybe", "steps": []})


class _Server:
    """Serves a schema that accepts everything, and counts requests."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                body = json.dumps(PERMISSIVE).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        (SCHEMA_URL, True),
        ("https://www.notiflows.com/schemas/notiflow.json", True),
        ("https://NOTIFLOWS.com/schemas/v2/notiflow.json", True),
        ("http://notiflows.com/schemas/notiflow.json", False),  # not https
        ("https://notiflows.com/other/notiflow.json", False),  # not under /schemas/
        ("https://notiflows.com/schemas/../admin", False),
        ("https://notiflows.com/schemas/%2e%2e/admin", False),
        ("https://notiflows.com:8443/schemas/notiflow.json", False),
        ("https://notiflows.com@evil.example/schemas/notiflow.json", False),
        ("https://user@notiflows.com/schemas/notiflow.json", False),
        ("https://notiflows.com.evil.example/schemas/notiflow.json", False),
        ("https://evilnotiflows.com/schemas/notiflow.json", False),
        ("https://api.notiflows.com/schemas/notiflow.json", False),
        ("https://127.0.0.1/schemas/notiflow.json", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("https://notiflows.com:abc/schemas/x", False),
        ("https://notiflows.com/schemas\\..\\x", False),
    ],
)
def test_only_the_vendors_schema_urls_are_trusted(url: str, trusted: bool) -> None:
    assert is_vendor_schema_url(url) is trusted


def test_another_url_is_not_fetched_and_the_bundled_schema_checks_the_file(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base}/schema.json"
    store = SchemaStore(cache_dir=tmp_path, fetch=True)
    checker, source = store.checker_for(url)
    assert server.hits == []  # no request leaves the run for it
    assert checker.validator.schema == bundled_schema()
    assert "ignored" in source
    (note,) = store.notes
    assert url in note and "--schema PATH" in note and "not fetched" in note
    problems = checker.check(parse_json(INVALID_DOC), file="f.json")
    assert any(p.code == "schema-type" for p in problems)  # validation is still on


def test_schema_dispatch_cannot_be_switched_off_by_the_file(tmp_path: Path, server: _Server) -> None:
    """The audit's case: `$schema` pointing at `{"type": "object"}` made every document valid."""
    dispatch = SchemaDispatch(SchemaStore(cache_dir=tmp_path, fetch=True))
    text = json.dumps({"$schema": f"{server.base}/permissive.json", "name": "x", "active": "maybe", "steps": []})
    problems = dispatch.check(parse_json(text), file="f.json")
    assert any(p.code == "schema-type" for p in problems)
    assert server.hits == []


def test_an_untrusted_url_is_not_read_from_the_cache_either(tmp_path: Path, server: _Server) -> None:
    url = f"{server.base}/schema.json"
    SchemaStore(cache_dir=tmp_path, fetch=True, trusted=lambda _u: True).checker_for(url)  # fills the cache
    assert server.hits == ["/schema.json"]
    checker, source = SchemaStore(cache_dir=tmp_path, fetch=False).checker_for(url)
    assert checker.validator.schema == bundled_schema()
    assert "cached" not in source


def test_the_vendor_url_is_still_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def fake_download(url: str, timeout: float) -> dict[str, Any]:
        asked.append(url)
        return dict(PERMISSIVE)

    monkeypatch.setattr(store_module, "_download", fake_download)
    store = SchemaStore(cache_dir=tmp_path, fetch=True)
    _, source = store.checker_for(SCHEMA_URL)
    assert asked == [SCHEMA_URL]
    assert source == f"{SCHEMA_URL} (downloaded)"


def test_schema_override_still_wins(tmp_path: Path, server: _Server) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(PERMISSIVE))
    checker, source = SchemaStore(cache_dir=tmp_path, override=path, fetch=True).checker_for(f"{server.base}/x")
    assert source == f"--schema {path}"
    assert checker.validator.is_valid(json.loads(INVALID_DOC))
    assert server.hits == []
