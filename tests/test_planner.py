"""planner: the conflict rule of CONTRACT section 7, one case per test."""

from __future__ import annotations

import copy
from typing import Any

from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.model import Problem, Severity, Status
from notiflows_deploy.planner import KnownContent, PlanInput, plan_one, plan_outcome

PATH = ".notiflows/notiflows/welcome-series"


def payload(subject: str = "Welcome", body: str = "<p>Hi {{ data.first_name }}</p>\n") -> dict[str, Any]:
    return {
        "name": "Welcome Series",
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
             "channel_handle": "transactional-email",
             "template": {"channel_type": "email", "data": {"subject": subject, "content_type": "html",
                                                            "body": body}}},
            {"handle": "end", "type": "end", "position": 2},
        ],
    }


def remote(content: dict[str, Any], *, sha: str, version: int = 3, actor: str = "ci-deploy",
           actor_type: str = "account_token", inserted_at: str = "2026-11-20T10:00:00Z") -> RemoteNotiflow:
    steps = copy.deepcopy(content["steps"])
    for i, step in enumerate(steps):
        step["id"] = f"id-{sha}-{i}"  # server-added, differs per version
        step["inserted_at"] = inserted_at
    return RemoteNotiflow.from_json({
        "handle": "welcome-series", "name": content.get("name"), "active": content.get("active", True),
        "include_in_preferences": True, "has_unpublished_changes": True, "updated_at": inserted_at,
        "current_version": {"sha": sha, "status": "draft", "version_number": version, "valid": True,
                            "inserted_at": inserted_at, "steps": steps,
                            "created_by": {"type": actor_type, "id": "x", "name": actor}},
        "published_version": None,
    })


def inp(**kw: Any) -> PlanInput:
    values: dict[str, Any] = {"handle": "welcome-series", "path": PATH, "payload": payload(), "problems": [],
                              "meta_sha": None, "base_payload": None, "remote": None}
    values.update(kw)
    return PlanInput(**values)


def test_create_when_the_server_has_none() -> None:
    item = plan_one(inp())
    assert item.action is Status.WOULD_CREATE
    assert item.expected_sha is None and item.remote_sha is None
    assert item.diff is not None and item.diff.summary() == "new notiflow with 3 steps"
    assert item.reason == "The server has no notiflow 'welcome-series'; it would be created."


def test_create_again_when_the_recorded_notiflow_is_gone() -> None:
    item = plan_one(inp(meta_sha="aaaa"))
    assert item.action is Status.WOULD_CREATE
    assert "although the repo recorded sha aaaa" in item.reason


def test_update_when_the_server_is_at_the_recorded_sha() -> None:
    item = plan_one(inp(payload=payload("Welcome!"), meta_sha="s1", remote=remote(payload(), sha="s1")))
    assert item.action is Status.WOULD_UPDATE
    assert item.expected_sha == "s1"
    assert item.diff is not None
    assert item.diff.render() == '~ step email_1 (channel/email)\n    template.data.subject: "Welcome" -> "Welcome!"'
    assert "recorded in __meta.sha" in item.reason and "1 step changed" in item.reason


def test_unchanged_even_when_the_sha_differs_from_meta() -> None:
    item = plan_one(inp(meta_sha="old", remote=remote(payload(), sha="new", version=5)))
    assert item.action is Status.UNCHANGED
    assert item.expected_sha == "new" and item.remote_version == 5
    assert item.diff is None
    assert item.notes and "differs from __meta.sha" in item.notes[0]


def test_no_false_conflict_on_a_second_deploy() -> None:
    # First deploy pushed `base` from CI (server sha s2); __meta.sha in git still says s1.
    base = payload("Welcome v2")
    item = plan_one(inp(payload=payload("Welcome v3"), meta_sha="s1", base_payload=base,
                        remote=remote(base, sha="s2", version=4)))
    assert item.action is Status.WOULD_UPDATE
    assert item.expected_sha == "s2"
    assert "holds what the base commit had" in item.reason


def test_conflict_after_a_dashboard_edit() -> None:
    base = payload("Welcome")
    dashboard = payload("Edited in the dashboard")
    item = plan_one(inp(payload=payload("Repo edit"), meta_sha="s1", base_payload=base,
                        remote=remote(dashboard, sha="s9", version=7, actor="Ada Lovelace", actor_type="member",
                                      inserted_at="2026-11-22T09:30:00Z")))
    assert item.action is Status.CONFLICT
    assert item.expected_sha is None
    info = item.conflict
    assert info is not None
    assert (info.recorded_sha, info.server_sha, info.server_version) == ("s1", "s9", 7)
    assert info.changed_at == "2026-11-22T09:30:00Z"
    assert info.changed_by == "Ada Lovelace (member)"
    assert info.describe() == (
        "The server holds version 7 (sha s9), created at 2026-11-22T09:30:00Z by Ada Lovelace (member);"
        " the repo recorded sha s1."
    )
    view = info.view()
    assert '! step email_1 template.data.subject: repo "Repo edit", server "Edited in the dashboard"' in view
    assert "not pushed (use --force to overwrite)" in item.reason
    # The diff is what a forced push would do (server -> repo).
    assert item.diff is not None and '"Edited in the dashboard" -> "Repo edit"' in item.diff.render()


def test_conflict_when_the_repo_has_no_record_of_an_existing_notiflow() -> None:
    item = plan_one(inp(remote=remote(payload("Other"), sha="s5")))
    assert item.action is Status.CONFLICT
    assert "no record of it" in item.reason
    assert item.conflict is not None and item.conflict.view().startswith("The base is unknown")


def test_conflict_when_only_the_server_moved() -> None:
    # --all: the repo did not change this notiflow in the range, but the dashboard did.
    item = plan_one(inp(meta_sha="s1", base_payload=payload(), remote=remote(payload("Dash"), sha="s2")))
    assert item.action is Status.CONFLICT
    assert "changed outside git while the repo's content stayed as at the base" in item.reason


def test_invalid_is_never_pushed_and_warnings_alone_are_not_invalid() -> None:
    err = Problem(f"{PATH}/notiflow.json", 3, 5, "schema", "bad")
    warn = Problem(f"{PATH}/notiflow.json", 1, 1, "style", "meh", Severity.WARNING)
    item = plan_one(inp(problems=[err, warn], payload=None, remote=remote(payload(), sha="s1")))
    assert item.action is Status.INVALID
    assert item.reason == "1 error in the local files; not pushed."
    assert item.errors == [err] and item.warnings == [warn]
    ok = plan_one(inp(problems=[warn]))
    assert ok.action is Status.WOULD_CREATE and ok.warnings == [warn]


def test_removed_never_deletes_and_says_whether_the_server_still_has_it() -> None:
    item = plan_one(inp(payload=None, removed=True, remote=remote(payload(), sha="s1", version=2)))
    assert item.action is Status.REMOVED
    assert "nothing is deleted on the server" in item.reason and "still has it (version 2)" in item.reason
    gone = plan_one(inp(payload=None, removed=True))
    assert gone.action is Status.REMOVED and "does not have it either" in gone.reason


def test_plan_outcome_for_a_conflict_carries_the_three_way_view_and_masks_secrets() -> None:
    secret = "sk_live_123456"
    mine = payload(body=f"key {secret}\n")
    item = plan_one(inp(payload=mine, meta_sha="s1", base_payload=payload(), remote=remote(payload("Dash"), sha="s2")))
    outcome = plan_outcome(item, secrets=[secret])
    assert outcome.status is Status.CONFLICT
    assert outcome.remote_sha_before == "s2"
    assert outcome.diff.startswith("Changed in the repo since base")
    assert secret not in outcome.diff and "***" in outcome.diff
    assert outcome.extra["conflict"]["server_sha"] == "s2"
    assert secret not in str(outcome.to_dict())


def test_plan_outcome_for_an_update_has_the_diff() -> None:
    item = plan_one(inp(payload=payload("New"), meta_sha="s1", remote=remote(payload(), sha="s1")))
    outcome = plan_outcome(item)
    assert outcome.status is Status.WOULD_UPDATE
    assert outcome.diff == '~ step email_1 (channel/email)\n    template.data.subject: "Welcome" -> "New"'
    assert outcome.extra["summary"] == "1 step changed"


# ---- rotated secrets: the server's old value is not in the environment any more -------------------------

OLD_SECRET = "subject-OLD-ROTATED-4411"
NEW_SECRET = "subject-NEW-ROTATED-9922"
SUBJECT = frozenset({("email_1", ("template", "data", "subject"))})


def test_plan_diff_never_shows_a_rotated_secret_and_says_it_changed() -> None:
    item = plan_one(inp(payload=payload(NEW_SECRET), meta_sha="s1", remote=remote(payload(OLD_SECRET), sha="s1"),
                        secret_paths=SUBJECT))
    assert item.action is Status.WOULD_UPDATE  # decided on the real values
    outcome = plan_outcome(item, secrets=[NEW_SECRET])  # only the current value is known as a secret
    text = str(outcome.to_dict())
    assert OLD_SECRET not in text and NEW_SECRET not in text
    assert outcome.diff == ('~ step email_1 (channel/email)\n'
                            '    template.data.subject: "***" -> "***" (changed; the value holds a secret)')


def test_plan_with_the_same_secret_on_the_server_is_unchanged() -> None:
    item = plan_one(inp(payload=payload(NEW_SECRET), meta_sha="s1", remote=remote(payload(NEW_SECRET), sha="s1"),
                        secret_paths=SUBJECT))
    assert item.action is Status.UNCHANGED


def test_conflict_view_never_shows_a_rotated_secret_on_any_side() -> None:
    base_secret = "subject-BASE-0000"
    # base had one value, the server another (a dashboard edit), the repo now a third
    item = plan_one(inp(payload=payload(NEW_SECRET), meta_sha="s0", base_payload=payload(base_secret),
                        remote=remote(payload(OLD_SECRET), sha="s2"), secret_paths=SUBJECT))
    assert item.action is Status.CONFLICT
    outcome = plan_outcome(item, secrets=[NEW_SECRET])
    text = str(outcome.to_dict())
    for value in (base_secret, OLD_SECRET, NEW_SECRET):
        assert value not in text
    assert outcome.diff.startswith("Changed in the repo since base")
    assert 'template.data.subject: "***" -> "***" (changed; the value holds a secret)' in outcome.diff
    assert "(different values; they hold a secret)" in outcome.diff
    # no base: the direct server -> repo view is masked too
    unknown = plan_outcome(plan_one(inp(payload=payload(NEW_SECRET), remote=remote(payload(OLD_SECRET), sha="s2"),
                                        secret_paths=SUBJECT)))
    assert unknown.status is Status.CONFLICT
    assert OLD_SECRET not in unknown.diff and NEW_SECRET not in unknown.diff
    assert "(changed; the value holds a secret)" in unknown.diff


# ---- pull requests: the base branch tip's content is ours too ----------------------------------------------


def test_base_branch_tip_content_is_ours_for_a_pull_request() -> None:
    merge_base = payload("Welcome")
    main_tip = payload("Welcome (main moved on and was deployed)")
    tip = KnownContent(main_tip, "the base branch tip 1a2b3c4d5e6f (pull_request.base.sha)")
    item = plan_one(inp(payload=payload("PR edit"), base_payload=merge_base, remote=remote(main_tip, sha="s7"),
                        also_ours=(tip,)))
    assert item.action is Status.WOULD_UPDATE and item.expected_sha == "s7"
    assert "holds what the base branch tip 1a2b3c4d5e6f (pull_request.base.sha) has" in item.reason
    # without it, the same server is a conflict that names what was compared
    plain = plan_one(inp(payload=payload("PR edit"), base_payload=merge_base, remote=remote(main_tip, sha="s7")))
    assert plain.action is Status.CONFLICT
    dash = plan_one(inp(payload=payload("PR edit"), base_payload=merge_base, remote=remote(payload("Dash"), sha="s8"),
                        also_ours=(tip,)))
    assert dash.action is Status.CONFLICT
    assert "nor the base branch tip 1a2b3c4d5e6f (pull_request.base.sha)" in dash.reason
    # the three-way view still starts from the merge base
    assert dash.conflict is not None and dash.conflict.base_content is not None
    assert dash.conflict.base_content["steps"]["email_1"]["template"]["data"]["subject"] == "Welcome"
