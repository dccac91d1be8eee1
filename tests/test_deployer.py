"""deployer: pushes, conflicts (planned and at push time), force, publish, partial failure, re-runs.

The client is an in-memory fake with the semantics of CONTRACT section 5 (compare-and-swap on
`expected_sha`, unchanged content makes no new version, publish validates).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from notiflows_deploy.api.errors import ApiTimeoutError, ConflictError, ServerError, ValidationFailedError
from notiflows_deploy.api.models import RemoteNotiflow, UpsertResult
from notiflows_deploy.deployer import deploy, is_published
from notiflows_deploy.model import NotiflowOutcome, Problem, Status
from notiflows_deploy.planner import PlanInput, PlanItem, plan_one

KEYS = ("name", "active", "include_in_preferences", "steps")


class Died(BaseException):
    """The runner was killed (not an Exception: nothing may swallow it)."""


class FakeServer:
    def __init__(self) -> None:
        self.flows: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self.fail: dict[tuple[str, str], BaseException] = {}  # (op, handle) -> raised
        self.before_upsert: Callable[[str], None] | None = None
        self.die_after_upserts: int | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0

    # ---- server-side helpers ----------------------------------------------------------------------
    @staticmethod
    def sha(content: dict[str, Any]) -> str:
        text = json.dumps({k: content.get(k) for k in KEYS}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def _add_version(self, handle: str, content: dict[str, Any], actor: dict[str, str]) -> None:
        flow = self.flows.setdefault(handle, {"versions": [], "current": None, "published": None, "next": 1})
        flow["versions"] = [v for v in flow["versions"] if v["status"] != "draft"]  # one draft at a time
        number = flow["next"]
        flow["next"] += 1
        flow["versions"].append({"content": copy.deepcopy(content), "sha": self.sha(content), "status": "draft",
                                 "version_number": number, "created_by": actor,
                                 "inserted_at": f"2026-11-23T10:00:{number:02d}Z"})
        flow["current"] = number

    def seed(self, handle: str, payload: dict[str, Any], *, publish: bool = False) -> str:
        self._add_version(handle, self._merge(None, payload), {"type": "account_token", "id": "t", "name": "ci"})
        if publish:
            self._publish(handle)
        sha: str = self.current(handle)["sha"]
        return sha

    def dashboard_edit(self, handle: str, mutate: Callable[[dict[str, Any]], None]) -> None:
        content = copy.deepcopy(self.current(handle)["content"])
        mutate(content)
        self._add_version(handle, content, {"type": "member", "id": "m", "name": "Ada Lovelace"})

    def current(self, handle: str) -> dict[str, Any]:
        flow = self.flows[handle]
        return next(v for v in flow["versions"] if v["version_number"] == flow["current"])

    def _merge(self, current: dict[str, Any] | None, payload: dict[str, Any]) -> dict[str, Any]:
        base = current or {"name": "x", "active": True, "include_in_preferences": True, "steps": []}
        return {k: copy.deepcopy(payload[k]) if k in payload else copy.deepcopy(base[k]) for k in KEYS}

    def _publish(self, handle: str) -> None:
        flow = self.flows[handle]
        for v in flow["versions"]:
            if v["status"] == "published":
                v["status"] = "archived"
        current = self.current(handle)
        current["status"] = "published"
        flow["published"] = current["version_number"]

    def _version_json(self, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        steps = copy.deepcopy(v["content"]["steps"])
        for i, s in enumerate(steps):  # server noise the planner must ignore
            s.update(id=f"{v['sha'][:6]}-{i}", inserted_at=v["inserted_at"], parent_step_handle=None)
        return {"id": f"v{v['version_number']}", "sha": v["sha"], "status": v["status"],
                "version_number": v["version_number"], "valid": True, "steps": steps,
                "inserted_at": v["inserted_at"], "created_by": v["created_by"]}

    def remote(self, handle: str) -> RemoteNotiflow:
        flow = self.flows[handle]
        current = self.current(handle)
        published = next((v for v in flow["versions"] if v["version_number"] == flow["published"]), None)
        return RemoteNotiflow.from_json({
            "handle": handle, **{k: current["content"][k] for k in KEYS if k != "steps"},
            "has_unpublished_changes": current["status"] == "draft",
            "current_version": self._version_json(current), "published_version": self._version_json(published),
        })

    # ---- the client interface ---------------------------------------------------------------------
    def _enter(self, op: str, handle: str, sha: str | None) -> None:
        with self.lock:
            self.calls.append((op, handle, sha))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if (op, handle) in self.fail:
                raise self.fail[(op, handle)]
        except BaseException:
            with self.lock:
                self.in_flight -= 1
            raise

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def upsert_notiflow(self, handle: str, payload: dict[str, Any], *, expected_sha: str | None) -> UpsertResult:
        if self.die_after_upserts is not None and sum(c[0] == "upsert" for c in self.calls) >= self.die_after_upserts:
            raise Died()
        if self.before_upsert:
            self.before_upsert(handle)
        self._enter("upsert", handle, expected_sha)
        try:
            with self.lock:
                exists = handle in self.flows
                current = self.current(handle) if exists else None
                if expected_sha is not None and (current is None or current["sha"] != expected_sha):
                    raise ConflictError("The notiflow changed since expected_sha", code="conflict", status=409,
                                        details={"current_sha": "DO-NOT-TRUST"})
                new = self._merge(current["content"] if current else None, payload)
                if current is None or self.sha(new) != current["sha"]:
                    self._add_version(handle, new, {"type": "account_token", "id": "t", "name": "ci"})
            return UpsertResult(created=not exists, notiflow=self.remote(handle))
        finally:
            self._leave()

    def publish_notiflow(self, handle: str, *, expected_sha: str | None = None) -> RemoteNotiflow:
        self._enter("publish", handle, expected_sha)
        try:
            with self.lock:
                self._publish(handle)
            return self.remote(handle)
        finally:
            self._leave()

    def get_notiflow(self, handle: str) -> RemoteNotiflow | None:
        self._enter("get", handle, None)
        try:
            return self.remote(handle) if handle in self.flows else None
        finally:
            self._leave()


# ---- helpers ----------------------------------------------------------------------------------------


def payload(subject: str = "Welcome", name: str = "Welcome Series") -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
             "channel_handle": "transactional-email",
             "template": {"channel_type": "email", "data": {"subject": subject, "body": "<p>Hi</p>"}}},
            {"handle": "end", "type": "end", "position": 2},
        ],
    }


def path(handle: str) -> str:
    return f".notiflows/notiflows/{handle}"


def plan(server: FakeServer, handle: str, head: dict[str, Any] | None, *, meta_sha: str | None = None,
         base: dict[str, Any] | None = None, problems: list[Problem] | None = None,
         removed: bool = False) -> PlanItem:
    remote = server.remote(handle) if handle in server.flows else None
    return plan_one(PlanInput(handle=handle, path=path(handle), payload=head, problems=problems or [],
                              meta_sha=meta_sha, base_payload=base, remote=remote, removed=removed))


def run(items: list[PlanItem], server: FakeServer, **kw: Any) -> list[NotiflowOutcome]:
    options: dict[str, Any] = {"force": False, "publish": False, "concurrency": 4}
    options.update(kw)
    return deploy(items, server, **options)


def by_handle(outcomes: list[NotiflowOutcome]) -> dict[str, NotiflowOutcome]:
    return {o.handle: o for o in outcomes}


# ---- tests --------------------------------------------------------------------------------------------


def test_create_update_and_passthrough_statuses_without_calls() -> None:
    server = FakeServer()
    s1 = server.seed("upd", payload())
    server.seed("same", payload())
    server.seed("dash", payload())
    server.dashboard_edit("dash", lambda c: c.update(name="Dashboard name"))
    items = [
        plan(server, "new", payload()),
        plan(server, "upd", payload("Changed"), meta_sha=s1),
        plan(server, "same", payload(), meta_sha="whatever"),
        plan(server, "dash", payload("Repo"), meta_sha=s1, base=payload()),
        plan(server, "bad", None, problems=[Problem(f"{path('bad')}/notiflow.json", 2, 3, "schema", "bad")]),
        plan(server, "gone", None, removed=True),
    ]
    assert [i.action for i in items] == [Status.WOULD_CREATE, Status.WOULD_UPDATE, Status.UNCHANGED,
                                         Status.CONFLICT, Status.INVALID, Status.REMOVED]
    outcomes = run(items, server)
    assert [o.handle for o in outcomes] == ["new", "upd", "same", "dash", "bad", "gone"]  # input order
    assert [o.status for o in outcomes] == [Status.CREATED, Status.UPDATED, Status.UNCHANGED,
                                            Status.CONFLICT, Status.INVALID, Status.REMOVED]
    assert sorted(server.calls) == [("upsert", "new", None), ("upsert", "upd", s1)]
    new, upd, same, dash, bad, _ = outcomes
    assert new.version == 1 and new.remote_sha_after == server.current("new")["sha"] and new.remote_sha_before is None
    assert upd.remote_sha_before == s1 and upd.version_before == 1 and upd.version == 2
    assert upd.remote_sha_after == server.current("upd")["sha"] != s1
    assert upd.diff == '~ step email_1 (channel/email)\n    template.data.subject: "Welcome" -> "Changed"'
    assert same.remote_sha_after == same.remote_sha_before and same.diff == ""
    assert dash.diff.startswith("Changed in the repo since base")
    assert dash.extra["conflict"]["changed_by"] == "Ada Lovelace (member)"
    assert server.current("dash")["content"]["name"] == "Dashboard name"  # untouched
    assert bad.errors and bad.errors[0].code == "schema"


def test_force_pushes_conflicts_without_expected_sha_and_reports_forced() -> None:
    server = FakeServer()
    s1 = server.seed("dash", payload())
    server.dashboard_edit("dash", lambda c: c.update(name="Dashboard name"))
    overwritten = server.current("dash")["sha"]
    item = plan(server, "dash", payload("Repo"), meta_sha=s1, base=payload())
    (outcome,) = run([item], server, force=True)
    assert outcome.status is Status.FORCED
    assert server.calls == [("upsert", "dash", None)]
    assert outcome.remote_sha_before == overwritten and outcome.version_before == 2 and outcome.version == 3
    assert '~ name: "Dashboard name" -> "Welcome Series"' in outcome.diff
    assert "because of --force" in outcome.detail and overwritten in outcome.detail
    assert server.current("dash")["content"]["name"] == "Welcome Series"


def test_publish_after_push() -> None:
    server = FakeServer()
    s1 = server.seed("a", payload(), publish=True)
    (outcome,) = run([plan(server, "a", payload("New"), meta_sha=s1)], server, publish=True)
    assert outcome.status is Status.PUBLISHED and outcome.published
    assert outcome.version == 2 and outcome.remote_sha_after == server.current("a")["sha"]
    assert server.current("a")["status"] == "published"
    assert [c[0] for c in server.calls] == ["upsert", "publish"]
    assert server.calls[1][2] == outcome.remote_sha_after  # publish guarded by the pushed sha


def test_publish_refused_because_the_draft_changed_is_a_conflict() -> None:
    from notiflows_deploy.api.errors import DraftChangedError

    server = FakeServer()
    s1 = server.seed("a", payload(), publish=True)
    server.fail[("publish", "a")] = DraftChangedError(
        "the draft changed", code="draft_changed",
        details={"expected_sha": "x", "current_sha": "sha-dash", "changed_by": "Ada Lovelace"})
    (outcome,) = run([plan(server, "a", payload("New"), meta_sha=s1)], server, publish=True)
    assert outcome.status is Status.CONFLICT and not outcome.published
    assert ("The draft changed on the server after our push (sha sha-dash, by Ada Lovelace); not published."
            in outcome.detail)
    assert outcome.remote_sha_after == "sha-dash"


def test_publish_refused_keeps_the_draft_and_says_so() -> None:
    server = FakeServer()
    s1 = server.seed("a", payload())
    server.fail[("publish", "a")] = ValidationFailedError(
        "The draft is not valid", code="validation_failed", status=422, request_id="req_1",
        details={"fields": [{"field": "steps[1].channel_handle", "message": "can't be blank", "reason": "required"},
                            {"field": "steps[1].template", "message": "a channel step needs a template"}]})
    (outcome,) = run([plan(server, "a", payload("New"), meta_sha=s1)], server, publish=True)
    draft = server.current("a")
    assert outcome.status is Status.FAILED and not outcome.published
    assert [(p.file, p.line, p.column, p.code) for p in outcome.errors] == [
        (".notiflows/notiflows/a/notiflow.json", 1, 1, "publish-rejected")] * 2
    assert "steps[1].channel_handle: can't be blank" in outcome.errors[0].message
    assert f"The pushed draft (version 2, sha {draft['sha']}) stays on the server unpublished." in outcome.detail
    assert "request_id=req_1" in outcome.detail
    assert outcome.remote_sha_after == draft["sha"] and draft["status"] == "draft"


def test_publish_an_unchanged_but_unpublished_draft_and_skip_a_published_one() -> None:
    server = FakeServer()
    server.seed("draft", payload())
    server.seed("live", payload(), publish=True)
    items = [plan(server, "draft", payload()), plan(server, "live", payload())]
    assert [i.action for i in items] == [Status.UNCHANGED, Status.UNCHANGED]
    draft, live = run(items, server, publish=True)
    assert draft.status is Status.PUBLISHED and draft.published and draft.version == 1
    assert live.status is Status.UNCHANGED and live.published
    # Read again right before publishing (the plan's sha may be old), then published guarded by that sha.
    assert server.calls == [("get", "draft", None), ("publish", "draft", server.current("draft")["sha"])]


def test_partial_failure_the_others_are_still_deployed() -> None:
    server = FakeServer()
    shas = {h: server.seed(h, payload()) for h in ("a", "b", "c", "d")}
    server.fail[("upsert", "b")] = ServerError("Internal error", code="internal", status=500, request_id="req_b")
    server.fail[("upsert", "c")] = ApiTimeoutError("read timed out", code="timeout")
    server.fail[("upsert", "d")] = ValidationFailedError(
        "Validation failed", code="validation_failed", status=422,
        details={"fields": [{"field": "steps[1].template.data.body", "message": "can't be blank"}]})
    items = [plan(server, h, payload("New"), meta_sha=shas[h]) for h in ("a", "b", "c", "d")]
    a, b, c, d = run(items, server)
    assert a.status is Status.UPDATED and server.current("a")["version_number"] == 2
    assert b.status is Status.FAILED and "code=internal, status=500, request_id=req_b" in b.detail
    assert c.status is Status.FAILED and "may or may not have reached the server" in c.detail
    assert d.status is Status.FAILED and d.errors[0].code == "push-rejected"
    assert "field steps[1].template.data.body: can't be blank" in d.errors[0].message
    assert "nothing changed on the server" in d.detail


def test_an_unexpected_bug_in_one_notiflow_does_not_stop_the_others() -> None:
    server = FakeServer()
    server.fail[("upsert", "boom")] = KeyError("oops")
    outcomes = run([plan(server, "boom", payload()), plan(server, "ok", payload())], server)
    assert [o.status for o in outcomes] == [Status.FAILED, Status.CREATED]
    assert "KeyError" in outcomes[0].detail


def test_conflict_at_push_time_is_explained_from_a_fresh_read() -> None:
    server = FakeServer()
    s1 = server.seed("a", payload())
    item = plan(server, "a", payload("Repo"), meta_sha=s1)
    assert item.action is Status.WOULD_UPDATE
    server.before_upsert = lambda h: server.dashboard_edit(h, lambda c: c.update(name="Raced"))
    (outcome,) = run([item], server)
    raced = server.current("a")
    assert outcome.status is Status.CONFLICT
    assert server.calls == [("upsert", "a", s1), ("get", "a", None)]
    assert "between the plan and the push" in outcome.detail
    assert f"version 2 (sha {raced['sha'][:12]})" in outcome.detail and "Ada Lovelace (member)" in outcome.detail
    assert "DO-NOT-TRUST" not in str(outcome.to_dict())
    assert outcome.remote_sha_before == raced["sha"] and outcome.remote_sha_after is None
    assert outcome.extra["conflict"]["server_version"] == 2
    assert raced["content"]["name"] == "Raced"


def test_conflict_at_push_time_with_the_same_content_is_unchanged() -> None:
    server = FakeServer()
    s1 = server.seed("a", payload())
    item = plan(server, "a", payload("Repo"), meta_sha=s1)
    # Another deploy of the same commit landed first.
    server.before_upsert = lambda h: server.dashboard_edit(h, lambda c: c.update(payload("Repo")))
    (outcome,) = run([item], server)
    assert outcome.status is Status.UNCHANGED
    assert "another deploy pushed it" in outcome.detail


def test_force_overrides_a_conflict_found_at_push_time() -> None:
    server = FakeServer()
    s1 = server.seed("a", payload())
    item = plan(server, "a", payload("Repo"), meta_sha=s1)
    server.before_upsert = lambda h: (server.dashboard_edit(h, lambda c: c.update(name="Raced"))
                                      if len(server.calls) == 0 else None)
    (outcome,) = run([item], server, force=True)
    assert outcome.status is Status.FORCED
    assert [c[0] for c in server.calls] == ["upsert", "get", "upsert"]
    assert outcome.version_before == 2 and outcome.version == 3
    assert server.current("a")["content"]["steps"][1]["template"]["data"]["subject"] == "Repo"


def test_an_answer_with_the_same_sha_is_unchanged_not_updated() -> None:
    class IgnoringServer(FakeServer):
        """Answers 200 but keeps the old version: success must not be claimed from the status code."""

        def upsert_notiflow(self, handle: str, payload: dict[str, Any], *, expected_sha: str | None) -> UpsertResult:
            self.calls.append(("upsert", handle, expected_sha))
            return UpsertResult(created=False, notiflow=self.remote(handle))

    server = IgnoringServer()
    s1 = server.seed("a", payload())
    (outcome,) = run([plan(server, "a", payload("Repo"), meta_sha=s1)], server)
    assert outcome.status is Status.UNCHANGED
    assert outcome.remote_sha_after == outcome.remote_sha_before == s1
    assert "no new version" in outcome.detail
    assert "the content the server answered differs from what was pushed" in outcome.detail
    assert [w.code for w in outcome.warnings] == ["server-content-differs"]
    assert outcome.diff == ""


def test_interrupted_deploy_converges_on_rerun() -> None:
    server = FakeServer()
    handles = ("a", "b", "c")
    meta = {h: server.seed(h, payload()) for h in handles}  # __meta.sha as pulled; git never learns new shas
    base, head = payload(), payload("Head")

    def replan() -> list[PlanItem]:
        return [plan(server, h, head, meta_sha=meta[h], base=base) for h in handles]

    server.die_after_upserts = 1
    with pytest.raises(Died):
        run(replan(), server, concurrency=1)
    assert server.current("a")["version_number"] == 2 and server.current("b")["version_number"] == 1

    server.die_after_upserts = None
    items = replan()
    assert [i.action for i in items] == [Status.UNCHANGED, Status.WOULD_UPDATE, Status.WOULD_UPDATE]
    outcomes = run(items, server)
    assert [o.status for o in outcomes] == [Status.UNCHANGED, Status.UPDATED, Status.UPDATED]

    # A later commit: server shas differ from __meta.sha, but the server holds the base -> no false conflict.
    later = [plan(server, h, payload("Later"), meta_sha=meta[h], base=head) for h in handles]
    assert [i.action for i in later] == [Status.WOULD_UPDATE] * 3
    assert [o.status for o in run(later, server)] == [Status.UPDATED] * 3
    assert [i.action for i in [plan(server, h, payload("Later"), meta_sha=meta[h]) for h in handles]] == [
        Status.UNCHANGED] * 3


def test_created_race_notiflow_appeared_between_plan_and_push() -> None:
    server = FakeServer()
    item = plan(server, "a", payload())
    server.seed("a", payload("Someone else"))
    (outcome,) = run([item], server)
    assert outcome.status is Status.UPDATED
    assert "appeared on the server between the plan and the push" in outcome.detail
    assert [w.code for w in outcome.warnings] == ["created-over-existing"]


def test_concurrency_is_bounded() -> None:
    server = FakeServer()
    server.delay = 0.02
    items = [plan(server, f"n{i}", payload()) for i in range(12)]
    outcomes = run(items, server, concurrency=3)
    assert all(o.status is Status.CREATED for o in outcomes)
    assert 1 < server.max_in_flight <= 3


def test_secrets_never_reach_details_or_diffs() -> None:
    secret = "sk_live_abcdef"
    server = FakeServer()
    s1 = server.seed("a", payload())
    server.fail[("upsert", "b")] = ServerError(f"boom near {secret}", code="internal", status=500)
    items = [plan(server, "a", payload(f"Hi {secret}"), meta_sha=s1), plan(server, "b", payload(secret))]
    outcomes = run(items, server, secrets=[secret])
    assert [o.status for o in outcomes] == [Status.UPDATED, Status.FAILED]
    text = json.dumps([o.to_dict() for o in outcomes])
    assert secret not in text and "***" in text


def test_is_published_accepts_a_fresh_draft_equal_to_the_published_version() -> None:
    server = FakeServer()
    server.seed("a", payload(), publish=True)
    remote = server.remote("a")
    assert is_published(remote)
    data = dict(remote.raw)
    data["current_version"] = {**data["current_version"], "status": "draft", "version_number": 2}
    assert is_published(RemoteNotiflow.from_json(data))
    data["current_version"]["sha"] = "other"
    assert not is_published(RemoteNotiflow.from_json(data))


def test_forced_and_published_stays_visible_as_forced() -> None:
    server = FakeServer()
    s1 = server.seed("a", payload())
    server.dashboard_edit("a", lambda c: c.update(name="Dash"))
    (outcome,) = run([plan(server, "a", payload("Repo"), meta_sha=s1, base=payload())], server, force=True,
                     publish=True)
    assert outcome.status is Status.FORCED and outcome.published
    assert server.current("a")["status"] == "published"
    assert "Published version 3" in outcome.detail


def test_outcome_from_plan_writes_nothing() -> None:
    from notiflows_deploy.deployer import outcome_from_plan

    server = FakeServer()
    s1 = server.seed("a", payload())
    outcome = outcome_from_plan(plan(server, "a", payload("New"), meta_sha=s1), secrets=["New"])
    assert outcome.status is Status.WOULD_UPDATE and server.calls == []
    assert outcome.diff == '~ step email_1 (channel/email)\n    template.data.subject: "Welcome" -> "***"'


def test_the_real_client_satisfies_the_protocol() -> None:
    from notiflows_deploy.api.client import ManagementClient

    # The static check is mypy's (see _typed_check below); this one catches a renamed method at run time.
    for name in ("upsert_notiflow", "publish_notiflow", "get_notiflow"):
        assert callable(getattr(ManagementClient, name))


def _typed_check(client: Any) -> None:
    from notiflows_deploy.api.client import ManagementClient
    from notiflows_deploy.deployer import DeployClient

    real: ManagementClient = client
    proto: DeployClient = real  # mypy fails here if the real client drifts from the protocol
    assert proto


def _secret_plan(server: FakeServer, handle: str, head: dict[str, Any], **kw: Any) -> PlanItem:
    remote = server.remote(handle) if handle in server.flows else None
    return plan_one(PlanInput(handle=handle, path=path(handle), payload=head, problems=[], remote=remote,
                              base_payload=kw.get("base"), meta_sha=kw.get("meta_sha"),
                              secret_paths=frozenset({("email_1", ("template", "data", "subject"))})))


def test_rotated_secret_never_shown_in_deploy_outcomes() -> None:
    """The server holds the old value of a substituted field; only the new value is a known secret."""
    old, new = "subj-OLD-ROTATED-5150", "subj-NEW-ROTATED-6160"
    server = FakeServer()
    s_a = server.seed("a", payload(old))
    server.seed("b", payload(old))
    server.seed("c", payload(old))
    # a: a plain update; b: a conflict found at push time (the dashboard renamed it after the plan);
    # c: a conflict found at plan time, forced.
    items = [_secret_plan(server, "a", payload(new), meta_sha=s_a),
             _secret_plan(server, "b", payload(new), meta_sha=server.current("b")["sha"]),
             _secret_plan(server, "c", payload(new), base=payload("subj-BASE-7170"))]
    server.before_upsert = lambda h: h == "b" and server.dashboard_edit(h, lambda c: c.update(name="Raced"))
    outcomes = by_handle(run(items, server, secrets=[new]))
    assert outcomes["a"].status is Status.UPDATED
    assert outcomes["b"].status is Status.CONFLICT
    (forced,) = run([_secret_plan(server, "c", payload(new), base=payload("subj-BASE-7170"))], server,
                    secrets=[new], force=True)
    assert forced.status is Status.FORCED and "(changed; the value holds a secret)" in forced.diff
    text = json.dumps([o.to_dict() for o in [*outcomes.values(), forced]])
    for value in (old, new, "subj-BASE-7170"):
        assert value not in text
    assert "(changed; the value holds a secret)" in outcomes["a"].diff
    assert "(changed; the value holds a secret)" in outcomes["b"].diff and "Raced" in outcomes["b"].diff
    assert outcomes["c"].status is Status.CONFLICT and "(changed; the value holds a secret)" in outcomes["c"].diff
    assert server.current("a")["content"]["steps"][1]["template"]["data"]["subject"] == new  # real value pushed
