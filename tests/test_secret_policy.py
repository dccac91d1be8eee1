"""Which values are secrets, and a run that never breaks on odd input or a bug in one notiflow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from gitutil import TestRepo

from notiflows_deploy import cli, loader
from notiflows_deploy.github import masking
from notiflows_deploy.redact import Redactor, SecretPolicy, printable, variants
from notiflows_deploy.runner import SecretSink


def test_plain_words_short_values_and_handle_parts_are_public() -> None:
    policy = SecretPolicy.from_env({}, ["acme-welcome", "order-shipped"])
    for value in ("true", "FALSE", " null ", "abc", "acme", "shipped", "order-shipped"):
        assert not policy.is_secret(value), value
    for value in ("hooks.example/T0KEN", "+1 555 0100", "acme-welcome-x", "s3cr3t"):
        assert policy.is_secret(value), value


def test_public_vars_are_named_in_the_environment() -> None:
    env = {"NOTIFLOWS_PUBLIC_VARS": "APP_NAME, APP_URL  REGION", "APP_NAME": "Acme Shop",
           "APP_URL": "https://app.acme.example", "HOOK": "https://hooks.acme.example/T0KEN"}
    policy = SecretPolicy.from_env(env)
    assert not policy.is_secret("Acme Shop") and not policy.is_secret("https://app.acme.example")
    assert policy.is_secret("https://hooks.acme.example/T0KEN")
    assert not SecretPolicy.from_env({"NOTIFLOWS_PUBLIC_VARS": "*"}).is_secret("https://hooks.acme.example/T0KEN")


def test_the_token_is_kept_whatever_the_policy_says() -> None:
    told: list[list[str]] = []
    sink = SecretSink(told.append, SecretPolicy(all_public=True))
    sink.update(["https://hooks.acme.example/T0KEN"])
    sink.add_always("nf_at_true")
    assert sink == {"nf_at_true"} and told == [["nf_at_true"]]


def test_undecodable_names_are_shown_as_bytes() -> None:
    assert printable("caf\udce9") == "caf\\xe9"
    assert printable("a\ud800b") == "a\\ud800b"
    assert printable("plain é") == "plain é"
    assert Redactor(["s3cr3t-value"]).text("caf\udce9 s3cr3t-value") == "caf\\xe9 ***"


def _project(tmp_path: Path, handle: str, subject: str, body: str) -> TestRepo:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    repo.add_notiflow(handle, body=body)
    doc = json.loads((repo.path / repo.nf_path(handle, "notiflow.json")).read_text())
    doc["steps"][1]["template"]["data"]["subject"] = subject
    repo.write(repo.nf_path(handle, "notiflow.json"), json.dumps(doc, indent=2))
    repo.commit("add")
    return repo


def test_a_run_masks_real_secrets_but_not_public_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _project(tmp_path, "acme-welcome", "Welcome to ${BRAND}, flag ${FLAG}",
                    "<p>Questions? <a href='${HOOK}'>hook</a> ${APP_NAME}</p>\n")
    env = {"BRAND": "acme", "FLAG": "true", "HOOK": "https://hooks.acme.example/T0KEN-s3cr3t",
           "APP_NAME": "Acme Shop Inc", "NOTIFLOWS_PUBLIC_VARS": "APP_NAME"}
    summary = tmp_path / "summary.md"
    with running_emulator() as emulator:
        masking.reset()
        code = cli.main(["plan", "--all", "--repo", str(repo.path), "--format", "github", "--summary", str(summary)],
                        {"NOTIFLOWS_TOKEN": TOKEN, "NOTIFLOWS_BASE_URL": emulator.base_url, **env})
    out = capsys.readouterr().out
    assert code == 0, out
    masks = {line.removeprefix("::add-mask::") for line in out.splitlines() if line.startswith("::add-mask::")}
    # not "acme" (part of a handle), "true" or a declared public value; the spellings of the secrets, escaped
    expected = {v.replace("%", "%25") for v in variants(TOKEN) | variants(env["HOOK"])}
    assert masks == expected and {TOKEN, env["HOOK"]} <= masks
    text = summary.read_text()
    assert "acme-welcome" in text and "***-welcome" not in text
    # the body is shown with the public value and the secret masked: "<a href='***'>hook</a> Acme Shop Inc"
    assert "<a href='***'>hook</a> Acme Shop Inc</p>" in text
    shown = "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::"))
    assert env["HOOK"] not in text and env["HOOK"] not in shown, text


def test_a_crash_in_one_notiflow_leaves_the_others_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.init_project("alpha", "beta")
    real = loader.load_notiflow

    def flaky(*args: object, **kwargs: object) -> loader.LoadedNotiflow:
        if kwargs.get("handle") == "alpha":
            raise TypeError("unhashable type: 'list'")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "load_notiflow", flaky)
    report = tmp_path / "report.json"
    code = cli.main(["validate", "--all", "--repo", str(repo.path), "--report-json", str(report)], {})
    assert code == 4
    statuses = {n["handle"]: n for n in json.loads(report.read_text())["notiflows"]}
    assert statuses["beta"]["status"] == "valid"
    assert statuses["alpha"]["status"] == "invalid"
    assert statuses["alpha"]["errors"][0]["code"] == "internal-error"
    assert "Traceback" not in capsys.readouterr().err


def test_a_directory_name_that_is_not_utf8_is_reported_not_a_crash(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.init_project("welcome")
    source = os.fsencode(repo.path / repo.nf_path("welcome"))
    target = os.fsencode(repo.path / repo.nf_path("")) + b"/caf\xe9"
    os.rename(source, target)
    summary = tmp_path / "summary.md"
    code = cli.main(["validate", "--all", "--repo", str(repo.path), "--format", "json", "--summary", str(summary)], {})
    captured = capsys.readouterr()
    assert code == 4, captured
    assert "caf\\xe9" in summary.read_text()
    assert "Traceback" not in captured.err
    json.loads(captured.out)  # the console JSON is still well-formed


def test_a_renderer_bug_is_one_line_and_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from notiflows_deploy.report import summary

    repo = TestRepo(tmp_path / "repo")
    repo.init_project("welcome")

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(summary, "render_summary", broken)
    assert cli.main(["validate", "--all", "--repo", str(repo.path), "--format", "github"], {}) == 1
    captured = capsys.readouterr()
    assert "::error title=notiflows-deploy::could not write the results (RuntimeError)" in captured.out
    assert "Traceback" not in captured.err


def test_log_lines_cannot_start_a_workflow_command(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from notiflows_deploy.app import _log_to_stderr

    _log_to_stderr({"s3cr3t-value"})
    forged = "oops\n::error::forged\r\n::add-mask::x s3cr3t-value"
    logging.getLogger("notiflows_deploy.api").warning("server said: %s", forged)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("notiflows-deploy: server said: oops ::error::forged")
    assert "s3cr3t-value" not in err
