"""What a server echoes back cannot leak a secret or forge a workflow command.

* A secret echoed in another spelling (URL-encoded with ``%2B``/``%2F`` or ``+`` for a space, HTML-escaped,
  ASCII-only JSON) is redacted like the value itself, and ``::add-mask::`` registers those spellings too
  (`redact.variants`, the one list both use).
* The runner also acts on a legacy command, ``##[name]``, anywhere in a line that is not a ``::`` command.
  Log lines (a retry reason is the server's error code) and run-level messages are printed outside any
  stop-commands fence, so ``##[`` never reaches them intact.

A small proxy on 127.0.0.1 in front of the emulator rewrites chosen answers.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from gitutil import TestRepo

from notiflows_deploy import app, cli
from notiflows_deploy.api import client as api_client
from notiflows_deploy.github import masking
from notiflows_deploy.model import RunResult
from notiflows_deploy.redact import MIN_LENGTH, Redactor, variants
from notiflows_deploy.settings import Settings

KEY = 'k3y+Sl/ash=Eq&Amp Sp"Qu\\Bs<é>'
FORMS = {
    "quote": quote(KEY, safe=""),
    "quote-slash-safe": quote(KEY),
    "quote_plus": quote_plus(KEY),
    "html": html.escape(KEY),
    "go-html": KEY.replace("&", "&amp;").replace("+", "&#43;").replace('"', "&#34;").replace("<", "&lt;")
                  .replace(">", "&gt;"),
    "json-ascii": json.dumps(KEY)[1:-1],
    "json-slash": json.dumps(KEY)[1:-1].replace("/", "\\/"),
}
FORMS["lower-hex"] = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), FORMS["quote"])


def escaped(value: str) -> str:
    """As an ::add-mask:: line carries it."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


# ---- the variants ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_spelling_is_a_variant_and_redacted(name: str) -> None:
    form = FORMS[name]
    assert form in variants(KEY)
    assert Redactor([KEY]).text(f"server said: {form}!") == "server said: ***!"


def test_masking_registers_the_same_variants() -> None:
    out = io.StringIO()
    masking.reset()
    try:
        masking.mask(KEY, out)
        masks = {line.removeprefix("::add-mask::") for line in out.getvalue().splitlines()}
        assert masks == {escaped(v) for v in variants(KEY)}
        assert escaped(KEY) == out.getvalue().splitlines()[0].removeprefix("::add-mask::")  # the value first
    finally:
        masking.reset()


def test_no_variant_is_shorter_than_the_minimum() -> None:
    secret = "-----BEGIN-----\nab\n c \n-----END-----"
    assert all(len(v.strip()) >= MIN_LENGTH for v in variants(secret))
    assert "ab" not in variants(secret) and variants("abc") == frozenset()


def test_the_redactor_takes_the_longest_variant_like_one_alternation_would() -> None:
    import random

    secrets = ["abcd", "abcdef", "cdef-1", "a+b/c=d", "zz zz", "é-é-é"]
    redactor = Redactor(secrets)
    assert redactor.text("xabcdefy abcdabcdef") == "x***y ******"
    found = set().union(*(variants(s, with_base64=True) for s in secrets))
    naive = re.compile("|".join(re.escape(v) for v in sorted(found, key=len, reverse=True)))
    rng = random.Random(7)
    pieces = [*found, "a", "b", "c", "d", "e", "f", "-", "+", "%", " ", "&", "#", "é"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert redactor.text(text) == naive.sub("***", text), text


def test_base64_forms_are_redacted_but_left_to_the_runner_to_mask() -> None:
    import base64

    token = "hookTokenValue_9f8e7d6c5b4a"
    encoded = base64.b64encode(token.encode()).decode()
    assert Redactor([token]).text(f"Basic {encoded}") == "Basic ***"
    assert encoded not in variants(token)  # the runner masks base64 forms of every masked value itself


# ---- a proxy in front of the emulator -------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]
Rule = Callable[[str, str, bytes], "Answer | None"]


class Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[tuple[str, str, Rule]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/management/v1") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        for rule_method, pattern, rule in self.rules:
            if rule_method == method and re.search(pattern, path):
                got = rule(method, path, body)
                if got is not None:
                    return got
        request = urllib.request.Request(self.upstream + path, data=body or None, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, dict(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _do(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                status, answer_headers, out = proxy._answer(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in answer_headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_PATCH = _do

        return Handler


def envelope(status: int, code: str, message: str) -> Answer:
    error = {"type": "invalid_request_error", "code": code, "message": message, "status": status,
             "request_id": "req_1", "details": {}}
    return status, {"content-type": "application/json"}, json.dumps({"error": error}).encode()


@contextmanager
def proxied() -> Iterator[Proxy]:
    with running_emulator() as emulator:
        proxy = Proxy(emulator.base_url.split("/management")[0])
        try:
            yield proxy
        finally:
            proxy.server.shutdown()
            proxy.server.server_close()


class _NoSleepClient(api_client.ManagementClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("sleep", lambda _s: None)
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_client, "ManagementClient", _NoSleepClient)


WEBHOOK = {
    "name": "Hooked", "active": True,
    "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "webhook_1", "type": "channel", "position": 1, "channel_type": "webhook",
         "channel_handle": "incident-webhook",
         "template": {"channel_type": "webhook",
                      "data": {"content_type": "plaintext", "url": "https://hooks.example.com/in?key=${HOOK_KEY}",
                               "method": "POST"}}},
        {"handle": "end", "type": "end", "position": 2},
    ],
}


def test_a_rejection_that_echoes_the_secret_encoded_shows_none_of_its_spellings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    repo.write(repo.nf_path("hooked", "notiflow.json"), json.dumps(WEBHOOK, indent=2))
    repo.commit("hook")
    report, summary = tmp_path / "report.json", tmp_path / "summary.md"
    echo = "url rejected: " + " | ".join(f"{name}={form}" for name, form in FORMS.items())
    with proxied() as proxy:
        proxy.rules.append(("PUT", r"/notiflows/hooked$", lambda *_: envelope(422, "validation_failed", echo)))
        masking.reset()
        code = cli.main(["deploy", "--all", "--repo", str(repo.path), "--format", "github", "--api-url", proxy.url(),
                         "--report-json", str(report), "--summary", str(summary)],
                        {"NOTIFLOWS_TOKEN": TOKEN, "HOOK_KEY": KEY})
    out, err = capsys.readouterr()
    assert code == 5, out
    shown = "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::"))
    assert "url rejected" in shown  # the message is there, its secrets are not
    for where, text in {"stdout": shown, "stderr": err, "report": report.read_text(encoding="utf-8"),
                        "summary": summary.read_text(encoding="utf-8")}.items():
        for name, form in {**FORMS, "raw": KEY}.items():
            assert form not in text, f"{name} spelling leaked into {where}"
    masks = {line.removeprefix("::add-mask::") for line in out.splitlines() if line.startswith("::add-mask::")}
    assert {escaped(form) for form in FORMS.values()} <= masks


# ---- legacy commands --------------------------------------------------------------------------------------


def test_a_log_line_never_carries_a_legacy_command(capsys: pytest.CaptureFixture[str]) -> None:
    app._log_to_stderr(set())
    logging.getLogger("notiflows_deploy.api").warning("retrying (%s) by %s", "##[stop-commands]pwned",
                                                      "Mallory ##[error]forged ###[add-mask]x")
    err = capsys.readouterr().err
    assert "##[" not in err
    assert "stop-commands]pwned" in err and "error]forged" in err  # still readable


def test_a_server_error_code_in_a_retry_line_cannot_stop_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    repo.add_notiflow("base")
    repo.commit("initial")
    repo.add_notiflow("bad")
    repo.commit("add bad")
    calls = {"n": 0}

    def first_get(*_: Any) -> Answer | None:
        calls["n"] += 1
        return envelope(503, "##[stop-commands]pwned", "later") if calls["n"] == 1 else None

    with proxied() as proxy:
        proxy.rules.append(("GET", r"/notiflows/bad$", first_get))
        masking.reset()
        code = cli.main(["plan", "--repo", str(repo.path), "--format", "github", "--api-url", proxy.url()],
                        {"NOTIFLOWS_TOKEN": TOKEN})
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert calls["n"] >= 2 and "retrying" in err
    assert "##[" not in err and "##[" not in out


def test_a_run_level_message_never_carries_a_legacy_command(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A message printed after the results (here: the summary could not be written) is outside any fence."""
    where = tmp_path / "missing" / "##[stop-commands]x" / "summary.md"
    for fmt in ("text", "github"):
        settings = replace(Settings(mode="validate", repo=tmp_path), format=fmt, summary=where)
        app.deliver(RunResult(mode="validate"), settings, Redactor(()))
        captured = capsys.readouterr()
        assert "could not write the summary" in captured.out + captured.err
        assert "##[" not in captured.out + captured.err
