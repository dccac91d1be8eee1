"""secretpaths: secret fields stay readable (their raw text, variables as ***) and old values are learned."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator
from gitutil import TestRepo
from loader_helpers import load, make

from notiflows_deploy import cli
from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.diff import SecretPath
from notiflows_deploy.github import masking
from notiflows_deploy.planner import PlanInput, conflict_info, plan_one, plan_outcome
from notiflows_deploy.secretpaths import candidate_templates, old_values, secret_view

PHONE_OLD = "+1 555 0100 OLD"
PHONE_NEW = "+1 555 0199 NEW"
RAW_BASE = "Acme: order {{ data.n }} has shipped. Questions? Call ${SUPPORT_PHONE}.\n"
RAW_HEAD = "Acme: order {{ data.n }} is on its way. Questions? Call ${SUPPORT_PHONE}.\n"
BODY_AT: SecretPath = ("sms_1", ("template", "data", "body"))
URL_AT: SecretPath = ("webhook_1", ("template", "data", "url"))


def notiflow(name: str = "Order shipped ${BRAND}") -> str:
    return json.dumps({
        "name": name,
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "sms_1", "type": "channel", "position": 1, "channel_type": "sms", "channel_handle": "sms",
             "template": {"channel_type": "sms",
                          "data": {"content_type": "plaintext", "body@": "steps/sms_1/body.txt"}}},
            {"handle": "webhook_1", "type": "channel", "position": 2, "channel_type": "webhook",
             "channel_handle": "hook",
             "template": {"channel_type": "webhook",
                          "data": {"content_type": "plaintext", "url": "${HOOK_URL}", "method": "POST"}}},
            {"handle": "end", "type": "end", "position": 3},
        ],
    }, indent=2)


def loaded(tmp: Path, body: str, env: dict[str, str], *, name: str = "Order shipped ${BRAND}") -> Any:
    make(tmp, "order-shipped", notiflow(name), {"steps/sms_1/body.txt": body})
    result = load(tmp, "order-shipped", env)
    assert result.ok, result.problems
    return result


ENV_OLD = {"SUPPORT_PHONE": PHONE_OLD, "HOOK_URL": "https://hooks.example.invalid/OLD-0001", "BRAND": "Brand-Q7"}
ENV_NEW = {"SUPPORT_PHONE": PHONE_NEW, "HOOK_URL": "https://hooks.example.invalid/NEW-0002", "BRAND": "Brand-Q7"}


def remote_of(payload: dict[str, Any], sha: str = "s-server") -> RemoteNotiflow:
    return RemoteNotiflow.from_json({
        "handle": "order-shipped", "name": payload["name"], "active": True, "include_in_preferences": True,
        "current_version": {"sha": sha, "status": "draft", "version_number": 2, "valid": True,
                            "inserted_at": "2026-11-20T10:00:00Z", "steps": copy.deepcopy(payload["steps"])},
        "published_version": None,
    })


def test_candidates_are_heads_raw_text_then_the_bases(tmp_path: Path) -> None:
    head = loaded(tmp_path / "head", RAW_HEAD, ENV_NEW)
    base = loaded(tmp_path / "base", RAW_BASE, ENV_NEW, name="Order shipped")  # the name had no variable
    assert candidate_templates(head) == {
        BODY_AT: (RAW_HEAD,), URL_AT: ("${HOOK_URL}",), ("", ("name",)): ("Order shipped ${BRAND}",)}
    assert candidate_templates(head, base) == {
        BODY_AT: (RAW_HEAD, RAW_BASE),
        URL_AT: ("${HOOK_URL}",),  # the same raw text once
        ("", ("name",)): ("Order shipped ${BRAND}", "Order shipped"),  # the base's plain text fits only itself
    }


def test_secret_view_learns_the_servers_old_values_and_names_what_stays_hidden(tmp_path: Path) -> None:
    head = loaded(tmp_path / "head", RAW_HEAD, ENV_NEW)
    base = loaded(tmp_path / "base", RAW_BASE, ENV_NEW)
    server = loaded(tmp_path / "server", RAW_BASE, ENV_OLD).payload  # deployed before the rotation
    collected: set[str] = set()
    view = secret_view(head, base=base, remote=remote_of(server), secrets=collected)
    assert view.old_values == collected == {PHONE_OLD, ENV_OLD["HOOK_URL"], "Brand-Q7"}
    assert view.hidden == frozenset()
    assert view.templates == candidate_templates(head, base)
    # the server's text around the phone changed (fits neither raw text): that field stays hidden whole
    server["steps"][1]["template"]["data"]["body"] = f"Dashboard wording, call {PHONE_OLD}\n"
    collected.clear()
    view = secret_view(head, base=base, remote=remote_of(server), secrets=collected)
    assert view.hidden == {BODY_AT} and PHONE_OLD not in collected
    # no server, nothing learned; no head secrets, nothing at all
    assert secret_view(head, remote=None).old_values == frozenset()


def test_short_and_blank_values_are_not_learned() -> None:
    templates: dict[SecretPath, tuple[str, ...]] = {BODY_AT: ("Call ${A} or ${B} now",)}
    content = {"steps": {"sms_1": {"template": {"data": {"body": "Call 12 or    now"}}}}}
    values, hidden = old_values(templates, content)
    assert values == frozenset() and hidden == frozenset()  # "12" and "   " would blot out ordinary text
    assert old_values(templates, {"steps": {}}) == (frozenset(), frozenset())  # absent on the server


def test_plan_shows_the_wording_change_with_the_phone_masked(tmp_path: Path) -> None:
    head = loaded(tmp_path / "head", RAW_HEAD, ENV_NEW)
    base = loaded(tmp_path / "base", RAW_BASE, ENV_NEW)
    server = loaded(tmp_path / "server", RAW_BASE, ENV_OLD).payload
    secrets: set[str] = set(head.secret_values)
    view = secret_view(head, base=base, remote=remote_of(server), secrets=secrets)
    item = plan_one(PlanInput(handle="order-shipped", path="x", payload=head.payload, problems=[], meta_sha=None,
                              base_payload=base.payload, remote=remote_of(server), secret_paths=view.templates))
    outcome = plan_outcome(item, secrets)
    text = str(outcome.to_dict())
    for value in (PHONE_OLD, PHONE_NEW, ENV_OLD["HOOK_URL"], ENV_NEW["HOOK_URL"]):
        assert value not in text
    assert "-Acme: order {{ data.n }} has shipped. Questions? Call ***." in outcome.diff
    assert "+Acme: order {{ data.n }} is on its way. Questions? Call ***." in outcome.diff
    # what the server changed since base is only the values: said, not shown
    assert 'template.data.url: "***" -> "***" (changed; the value holds a secret)' in outcome.diff
    # the old secret_paths (a plain set) still hide the whole body, as before
    hidden = plan_one(PlanInput(handle="order-shipped", path="x", payload=head.payload, problems=[], meta_sha=None,
                                base_payload=base.payload, remote=remote_of(server), secret_paths=head.secret_paths))
    assert "is on its way" not in plan_outcome(hidden, secrets).diff


def test_a_conflict_found_at_push_time_is_safe_with_values_never_learned(tmp_path: Path) -> None:
    """The deployer re-reads the server after a 409 and explains it with the item's secret_paths:
    what the diff shows comes from the raw texts, so a value nobody extracted still cannot show."""
    head = loaded(tmp_path / "head", RAW_HEAD, ENV_NEW)
    fresh = loaded(tmp_path / "fresh", RAW_HEAD, {**ENV_OLD, "SUPPORT_PHONE": "+1 555 0111 LATEST"}).payload
    fresh["name"] = "Renamed"
    info = conflict_info(remote=remote_of(fresh), payload=head.payload, base_payload=None, meta_sha=None,
                         secret_paths=candidate_templates(head))
    view = info.view(secrets=head.secret_values)  # the latest value is in no secret set
    assert "LATEST" not in view and "OLD-0001" not in view
    assert "(changed; the value holds a secret)" in view


# ---- through the CLI, against the emulator ------------------------------------------------------------


def run(repo: TestRepo, base_url: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    masking.reset()
    code = cli.main(["plan", "--repo", str(repo.path), "--format", "github"],
                    {"NOTIFLOWS_TOKEN": TOKEN, "NOTIFLOWS_BASE_URL": base_url, **env})
    out, err = capsys.readouterr()
    return code, out + err


def test_plan_after_a_rotation_and_a_rewording_shows_the_words_and_masks_both_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = TestRepo(tmp_path / "repo")
    repo.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    repo.write(repo.nf_path("order-shipped", "notiflow.json"), notiflow())
    repo.write(repo.nf_path("order-shipped", "steps/sms_1/body.txt"), RAW_BASE)
    repo.commit("add")
    with running_emulator() as emulator:
        masking.reset()
        assert cli.main(["deploy", "--all", "--repo", str(repo.path), "--format", "json"],
                        {"NOTIFLOWS_TOKEN": TOKEN, "NOTIFLOWS_BASE_URL": emulator.base_url, **ENV_OLD}) == 0
        capsys.readouterr()
        repo.write(repo.nf_path("order-shipped", "steps/sms_1/body.txt"), RAW_HEAD)
        repo.commit("reword")
        code, log = run(repo, emulator.base_url, ENV_NEW, capsys)  # SUPPORT_PHONE and HOOK_URL rotated
    # base (rebuilt with the new values) differs from the server (old values): a conflict, with a view
    assert code == 3
    shown = "\n".join(line for line in log.splitlines() if not line.startswith("::add-mask::"))
    for value in (PHONE_OLD, PHONE_NEW, ENV_OLD["HOOK_URL"], ENV_NEW["HOOK_URL"]):
        assert value not in shown
    assert "-Acme: order {{ data.n }} has shipped. Questions? Call ***." in shown
    assert "+Acme: order {{ data.n }} is on its way. Questions? Call ***." in shown
    # the job masks the run's own values; what the server holds is redacted by the program alone (whoever
    # edits the server's text must not choose what the job masks)
    masks = {line.removeprefix("::add-mask::") for line in log.splitlines() if line.startswith("::add-mask::")}
    assert {PHONE_NEW, ENV_NEW["HOOK_URL"]} <= masks
    assert not {PHONE_OLD, ENV_OLD["HOOK_URL"]} & masks
