"""docs/example-summary.md is a real job summary: this test produces it from a real plan run.

The scenario: the example repo is deployed to the emulator; a pull request then rewords the welcome
emails, breaks weekly-digest, adds password-reset and edits order-shipped while someone edits it in
the dashboard too. Commit dates are fixed, so commit shas are stable; the emulator's content shas are
content-based; only timestamps and the port vary and are normalised. Set NFD_UPDATE_DOCS=1 to
rewrite the document (and its copy in the README) after an intended change.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from emulator_support import PROJECT, TOKEN, running_emulator

from notiflows_deploy.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "example-summary.md"


def git(repo: Path, *args: str, date: str = "2026-11-02T10:00:00Z") -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(
        ["git", "-c", "user.name=Ada", "-c", "user.email=ada@example.com", "-c", "init.defaultBranch=main", *args],
        cwd=repo, env=env, check=True, capture_output=True,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def normalise(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "2026-11-02T10:05:00Z", text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)


def produce(tmp_path: Path) -> str:
    repo = tmp_path / "acme-shop"
    shutil.copytree(ROOT / "examples" / "acme-shop", repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Add notiflows")
    nf = repo / ".notiflows" / "notiflows"
    with running_emulator() as emulator:
        env = {
            "NOTIFLOWS_TOKEN": TOKEN, "NOTIFLOWS_BASE_URL": emulator.base_url, "NOTIFLOWS_DEPLOY_SCHEMA_FETCH": "0",
            "APP_URL": "https://app.acme.example", "SUPPORT_PHONE": "+1 555 0100",
            "INCIDENT_WEBHOOK_URL": "https://hooks.acme.example/T0KEN-s3cr3t",
        }
        assert main(["deploy", "--all", "--repo", str(repo), "--format", "json"], env) == 0
        emulator.dashboard_edit(PROJECT, "order-shipped", {"template_updates": {"push_1": {"title": "Shipped!"}}})
        edit(nf / "welcome-series" / "notiflow.json", '"Getting started with Acme"', '"Your first week with Acme"')
        edit(nf / "welcome-series" / "steps" / "email_1" / "body.html", "setting up your shop", "launching your shop")
        edit(nf / "order-shipped" / "steps" / "sms_1" / "body.txt", "has shipped", "is on its way")
        edit(nf / "weekly-digest" / "notiflow.json", '"duration_unit": "days"', '"duration_unit": "day"')
        shutil.copytree(nf / "payment-failed", nf / "password-reset")
        edit(nf / "password-reset" / "notiflow.json", '"Payment Failed"', '"Password Reset"')
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "Reword welcome emails; add password-reset", date="2026-11-02T11:00:00Z")
        summary = tmp_path / "summary.md"
        code = main(["plan", "--repo", str(repo), "--summary", str(summary), "--format", "json"], env)
        assert code == 4  # invalid wins over conflict (CONTRACT section 3)
    return normalise(summary.read_text(encoding="utf-8"))


README = ROOT / "README.md"
START, END = "<!-- example-summary:start -->\n", "<!-- example-summary:end -->"


def update_readme_block(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    head, rest = readme.split(START, 1)
    README.write_text(head + START + text + END + rest.split(END, 1)[1], encoding="utf-8")


def test_example_summary_is_a_real_run(tmp_path: Path) -> None:
    text = produce(tmp_path)
    for expected in ("would-update", "would-create", "conflict", "invalid", "duration_unit", "<details"):
        assert expected in text
    assert "T0KEN-s3cr3t" not in text and TOKEN not in text
    if os.environ.get("NFD_UPDATE_DOCS") == "1":
        DOC.write_text(text, encoding="utf-8")
        update_readme_block(text)
    assert DOC.read_text(encoding="utf-8") == text, "docs/example-summary.md is stale: rerun with NFD_UPDATE_DOCS=1"


def test_readme_shows_the_example_summary() -> None:
    """The README embeds docs/example-summary.md verbatim between its markers, so it is a real one too."""
    readme = README.read_text(encoding="utf-8")
    assert readme.count(START) == 1 and readme.count(END) == 1
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block == DOC.read_text(encoding="utf-8"), "README's example summary differs from docs/example-summary.md"
