"""Values read out of the server's text are redacted in this program's output, never ``::add-mask::``ed.

Anyone who can edit a notiflow in the dashboard chooses that text: were its values masked for the whole
job, they could make the runner mask any word (the audit used "notiflows-deploy") and so drop the step
outputs that contain it. The run's own secrets (the token, substituted environment values) are masked as
before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from gitutil import TestRepo

from notiflows_deploy import cli
from notiflows_deploy.github import masking
from notiflows_deploy.redact import Redactor, SecretPolicy
from notiflows_deploy.runner import SecretSink
from notiflows_deploy.secretpaths import learn


def test_learned_values_are_redacted_but_never_reported() -> None:
    reported: list[list[str]] = []
    sink = SecretSink(reported.append, SecretPolicy(handles=("welcome",)))
    sink.learn(["notiflows-deploy", "short", "welcome", "true-ish-", "   spaced   "])
    # at least 6 characters (stripped) and past the policy: a handle's part is public
    assert set(sink) == {"notiflows-deploy", "true-ish-", "   spaced   "}
    assert reported == []
    assert Redactor(sink).text("by notiflows-deploy") == "by ***"
    # the same value named by the environment later is the run's own secret: reported then
    sink.update(["notiflows-deploy"])
    assert reported == [["notiflows-deploy"]]


def test_learn_falls_back_to_update_for_a_plain_set() -> None:
    plain: set[str] = set()
    learn(plain, ["old-value-1"])
    assert plain == {"old-value-1"}


def test_a_dashboard_edit_cannot_choose_what_the_job_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    repo.add_notiflow("welcome")
    path = repo.path / repo.nf_path("welcome", "notiflow.json")
    data = json.loads(path.read_text())
    data["steps"][1]["template"]["data"]["subject"] = "Key ${API_KEY} here"
    path.write_text(json.dumps(data, indent=2))
    repo.commit("initial")
    env = {"NOTIFLOWS_TOKEN": TOKEN, "API_KEY": "realSecret_123456"}
    with running_emulator() as emulator:
        env["NOTIFLOWS_BASE_URL"] = emulator.base_url
        masking.reset()
        assert cli.main(["deploy", "--all", "--repo", str(repo.path), "--format", "json"], env) == 0
        emulator.dashboard_edit(PROJECT, "welcome",
                                {"template_updates": {"email_1": {"subject": "Key notiflows-deploy here"}}})
        repo.write(repo.nf_path("welcome", "steps/email_1/body.html"), "<p>v2</p>\n")
        repo.commit("edit")
        capsys.readouterr()
        masking.reset()
        code = cli.main(["plan", "--repo", str(repo.path), "--format", "github"], env)
    out = capsys.readouterr().out
    assert code == 3, out
    masks = [line for line in out.splitlines() if line.startswith("::add-mask::")]
    assert "::add-mask::realSecret_123456" in masks
    assert not any("notiflows-deploy" in line for line in masks), masks
    assert "notiflows-deploy" not in masking.masked_values()
