"""A field that stopped using its variable still holds the value on the server: no side may show it.

The second audit's scenarios: `subject: "Key ${API_KEY} here"` is deployed with API_KEY=OLD, then a commit
makes it "Plain subject". With API_KEY rotated to NEW, a plan (push range or pull request, with its PR
comment) shows a conflict whose three-way view held `"Key OLD... here"`, and drift printed it too; with the
value unchanged, a scheduled drift (undeployed) printed the current value. Head no longer names the
variable, so only the base's and the history revisions' raw texts can explain the server's text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from fake_github import FakeGitHub, serve
from gitutil import TestRepo
from loader_helpers import load, make

from notiflows_deploy import cli
from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.drift import HistoryLookup, classify
from notiflows_deploy.emulator import Emulator
from notiflows_deploy.github import masking
from notiflows_deploy.secretpaths import candidate_templates

OLD = "OLDsecretValue_aaaa1111"
NEW = "NEWsecretValue_bbbb2222"
WITH_VAR = "Key ${API_KEY} here"
SHOWN = '"Key *** here" -> "Plain subject"'
SUBJECT_AT = ("email_1", ("template", "data", "subject"))


def notiflow(subject: str) -> str:
    return json.dumps({
        "name": "Welcome",
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
             "channel_handle": "transactional-email",
             "template": {"channel_type": "email",
                          "data": {"subject": subject, "content_type": "html", "body@": "steps/email_1/body.html"}}},
            {"handle": "end", "type": "end", "position": 2},
        ],
    }, indent=2) + "\n"


def put(repo: TestRepo, subject: str, body: str = "<p>hello</p>\n") -> None:
    repo.write(repo.nf_path("welcome", "notiflow.json"), notiflow(subject))
    repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), body)


@dataclass
class Outcome:
    code: int
    out: str  # stdout without its ::add-mask:: lines
    masks: set[str]  # what ::add-mask:: registered (escaped as sent)
    texts: dict[str, str]  # every output channel, by name

    def leaked(self, *values: str) -> dict[str, list[str]]:
        return {v: [where for where, text in self.texts.items() if v in text] for v in values
                if any(v in text for text in self.texts.values())}


class Nfd:
    """The CLI in-process under --format github, with the report, summaries and stderr captured."""

    def __init__(self, repo: TestRepo, emulator: Emulator, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.repo, self.emulator, self.tmp, self.capsys = repo, emulator, tmp, capsys
        self.count = 0

    def __call__(self, mode: str, *args: str, api_key: str, env: dict[str, str] | None = None) -> Outcome:
        self.count += 1
        report, summary, step = (self.tmp / f"{name}-{self.count}" for name in ("report.json", "summary.md", "step.md"))
        masking.reset()  # one process per run
        code = cli.main([mode, "--repo", str(self.repo.path), "--format", "github", "--report-json", str(report),
                         "--summary", str(summary), *args],
                        {"NOTIFLOWS_TOKEN": TOKEN, "NOTIFLOWS_BASE_URL": self.emulator.base_url, "API_KEY": api_key,
                         "GITHUB_STEP_SUMMARY": str(step), **(env or {})})
        out, err = self.capsys.readouterr()
        lines = out.splitlines()
        texts = {"stdout": "\n".join(line for line in lines if not line.startswith("::add-mask::")), "stderr": err}
        texts.update({path.name: path.read_text(encoding="utf-8") for path in (report, summary, step)})
        masks = {line.removeprefix("::add-mask::") for line in lines if line.startswith("::add-mask::")}
        return Outcome(code, texts["stdout"], masks, texts)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def repo(tmp_path: Path) -> TestRepo:
    r = TestRepo(tmp_path / "repo")
    r.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    put(r, WITH_VAR)
    r.commit("initial")
    return r


@pytest.fixture
def nfd(repo: TestRepo, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Nfd:
    return Nfd(repo, emulator, tmp_path, capsys)


def test_plan_after_a_rotation_where_head_dropped_the_variable_shows_no_value(nfd: Nfd, repo: TestRepo) -> None:
    first = repo.sha()
    assert nfd("deploy", "--all", api_key=OLD).code == 0
    put(repo, "Plain subject", body="<p>hello again</p>\n")
    repo.commit("drop the variable")
    run = nfd("plan", "--base", first, api_key=NEW)
    # the base (rebuilt with NEW) is not what the server holds (OLD): a conflict, with its three-way view
    assert run.code == 3, run.out
    assert run.leaked(OLD, NEW) == {}
    assert SHOWN in run.out and "Key *** here" in run.texts["summary.md-2"]
    assert "Changed on the server since base" in run.out
    assert OLD not in run.masks  # learned from the server's text: redacted, never ::add-mask::ed


def test_drift_after_a_rotation_where_head_dropped_the_variable_shows_no_value(nfd: Nfd, repo: TestRepo) -> None:
    assert nfd("deploy", "--all", api_key=OLD).code == 0
    put(repo, "Plain subject")
    repo.commit("drop the variable")
    run = nfd("drift", api_key=NEW)
    assert run.code == 2, run.out
    report = json.loads(run.texts["report.json-2"])
    assert [n["status"] for n in report["notiflows"]] == ["edited-remotely"]  # OLD is in no revision
    assert run.leaked(OLD, NEW) == {}
    assert SHOWN in run.out
    assert OLD not in run.masks


def test_undeployed_drift_hides_the_value_of_the_revision_the_server_holds(nfd: Nfd, repo: TestRepo) -> None:
    """Head no longer uses API_KEY, so only the history revision the server holds says it is a secret."""
    value = "SameSecretValue_cccc3333"
    assert nfd("deploy", "--all", api_key=value).code == 0
    put(repo, "Plain subject")
    repo.commit("drop the variable")
    run = nfd("drift", api_key=value)
    report = json.loads(run.texts["report.json-2"])
    assert [n["status"] for n in report["notiflows"]] == ["undeployed"]
    assert run.leaked(value) == {}
    assert SHOWN in run.texts["summary.md-2"]  # (the console shows no diff for undeployed)
    assert value in run.masks  # a value the revision substituted from the environment: the job masks it


def test_the_pull_request_comment_shows_no_old_value(nfd: Nfd, repo: TestRepo, tmp_path: Path) -> None:
    base = repo.sha()
    assert nfd("deploy", "--all", api_key=OLD).code == 0
    repo.git("checkout", "-q", "-b", "feature")
    put(repo, "Plain subject")
    head = repo.commit("drop the variable")
    repo.git("checkout", "-q", "--detach", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "Merge")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "action": "synchronize", "number": 7,
        "pull_request": {"number": 7, "base": {"sha": base, "ref": "main"}, "head": {"sha": head, "ref": "feature"}},
        "repository": {"default_branch": "main", "full_name": "octo/app"},
    }))
    with serve(FakeGitHub()) as gh:
        env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": repo.sha(),
               "GITHUB_REPOSITORY": "octo/app", "GITHUB_TOKEN": gh.token, "GITHUB_API_URL": gh.url}
        run = nfd("plan", "--comment-on-pr", api_key=NEW, env=env)
    assert run.code == 3, run.out
    body = gh.comments[7][0]["body"]
    assert OLD not in body and NEW not in body
    assert "Key *** here" in body
    assert run.leaked(OLD, NEW) == {}


# ---- the pieces -------------------------------------------------------------------------------------------


def loaded(tmp: Path, subject: str, api_key: str) -> Any:
    make(tmp, "welcome", notiflow(subject), {"steps/email_1/body.html": "<p>hello</p>\n"})
    result = load(tmp, "welcome", {"API_KEY": api_key})
    assert result.ok, result.problems
    return result


def remote_of(payload: dict[str, Any]) -> RemoteNotiflow:
    return RemoteNotiflow.from_json({
        "handle": "welcome", "name": payload["name"], "active": True,
        "current_version": {"sha": "s1", "status": "draft", "version_number": 1, "valid": True,
                            "steps": payload["steps"]},
        "published_version": None,
    })


def test_candidates_cover_the_locations_of_every_side(tmp_path: Path) -> None:
    head = loaded(tmp_path / "head", "Plain subject", NEW)
    base = loaded(tmp_path / "base", WITH_VAR, NEW)
    assert candidate_templates(head) == {}
    # a location only the base fills from a variable: head's own text there (fits only itself), the base's raw text
    assert candidate_templates(head, base) == {SUBJECT_AT: ("Plain subject", WITH_VAR)}
    assert candidate_templates(head, None, [base]) == candidate_templates(head, base)


def test_classify_masks_the_fields_of_the_revisions_it_compared(tmp_path: Path) -> None:
    head = loaded(tmp_path / "head", "Plain subject", NEW)
    old = loaded(tmp_path / "old", WITH_VAR, NEW)
    server = loaded(tmp_path / "server", WITH_VAR, OLD).payload
    templates = {"c1": old.secret_templates}
    history = HistoryLookup(lambda: ["c2", "c1"], {"c2": head.payload, "c1": old.payload}.get,
                            templates=lambda commit: templates.get(commit, {}))
    outcome = classify("welcome", head, remote_of(server), history)
    assert outcome.status.value == "edited-remotely"
    assert OLD not in outcome.diff and SHOWN in outcome.diff
    assert set(history.seen) == {"c2", "c1"}  # every revision searched is a side of the diff


def test_a_deploy_that_adopts_an_older_revision_hides_that_revisions_values(nfd: Nfd, repo: TestRepo) -> None:
    # deployed with the variable; the commit dropping it was never deployed (its run was dropped); a later push
    # range (plain subject at base and head) finds the server at the first revision: ours, from history.
    assert nfd("deploy", "--all", api_key=OLD).code == 0
    put(repo, "Plain subject")
    dropped = repo.commit("drop the variable (this push's run never ran)")
    put(repo, "Plain subject", body="<p>hello again</p>\n")
    repo.commit("reword the body")
    run = nfd("plan", "--base", dropped, api_key=OLD)
    assert run.code == 0 and "holds this repo's own revision" in run.out, run.out
    assert run.leaked(OLD) == {}
    assert SHOWN in run.out
    # rotated since: the revision rebuilt with NEW is not what the server holds, so a conflict; still no value
    rotated = nfd("plan", "--base", dropped, api_key=NEW)
    assert rotated.code == 3 and rotated.leaked(OLD, NEW) == {}
