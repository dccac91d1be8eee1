"""planner + deployer over the real client against the bundled emulator (127.0.0.1): the pieces agree."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import PROJECT, TOKEN, running_emulator, valid_payload

from notiflows_deploy.api.client import ManagementClient
from notiflows_deploy.api.models import UpsertResult
from notiflows_deploy.deployer import deploy
from notiflows_deploy.emulator import Emulator
from notiflows_deploy.model import Status
from notiflows_deploy.planner import PlanInput, PlanItem, plan_one


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture()
def client(emu: Emulator) -> Iterator[ManagementClient]:
    c = ManagementClient(emu.base_url, TOKEN, PROJECT, max_attempts=2, backoff_base=0.01, backoff_cap=0.02)
    try:
        yield c
    finally:
        c.close()


def plan(client: ManagementClient, handle: str, payload: dict[str, Any], *, meta_sha: str | None = None,
         base: dict[str, Any] | None = None) -> PlanItem:
    return plan_one(PlanInput(handle=handle, path=f".notiflows/notiflows/{handle}", payload=payload, problems=[],
                              meta_sha=meta_sha, base_payload=base, remote=client.get_notiflow(handle)))


def with_subject(subject: str) -> dict[str, Any]:
    payload = valid_payload()
    payload["steps"][1]["template"]["data"]["subject"] = subject
    return payload


def test_create_then_unchanged_then_update_then_no_false_conflict(client: ManagementClient) -> None:
    first = plan(client, "welcome-series", valid_payload())
    assert first.action is Status.WOULD_CREATE
    (created,) = deploy([first], client, force=False, publish=False, concurrency=2)
    assert created.status is Status.CREATED and created.version == 1
    meta_sha = created.remote_sha_after  # as if pulled right after

    again = plan(client, "welcome-series", valid_payload(), meta_sha=meta_sha)
    assert again.action is Status.UNCHANGED  # the emulator's answer normalises to the same content

    update = plan(client, "welcome-series", with_subject("v2"), meta_sha=meta_sha, base=valid_payload())
    assert update.action is Status.WOULD_UPDATE
    (updated,) = deploy([update], client, force=False, publish=True, concurrency=2)
    assert updated.status is Status.PUBLISHED and updated.version == 2 and updated.published

    # Next commit: __meta.sha is stale (CI never writes it back), the server holds the base: no conflict.
    later = plan(client, "welcome-series", with_subject("v3"), meta_sha=meta_sha, base=with_subject("v2"))
    assert later.action is Status.WOULD_UPDATE
    assert [o.status for o in deploy([later], client, force=False, publish=False, concurrency=1)] == [Status.UPDATED]


def test_dashboard_edit_is_a_conflict_and_force_overwrites(emu: Emulator, client: ManagementClient) -> None:
    (created,) = deploy([plan(client, "welcome-series", valid_payload())], client, force=False, publish=False,
                        concurrency=1)
    emu.store.dashboard_edit(PROJECT, "welcome-series", {"template_updates": {"email_1": {"subject": "Dash"}}})
    item = plan(client, "welcome-series", with_subject("Repo"), meta_sha=created.remote_sha_after,
                base=valid_payload())
    assert item.action is Status.CONFLICT
    assert item.conflict is not None and item.conflict.changed_by == "Dashboard User (member)"
    assert 'repo "Repo", server "Dash"' in item.conflict.view()
    (blocked,) = deploy([item], client, force=False, publish=False, concurrency=1)
    assert blocked.status is Status.CONFLICT
    (forced,) = deploy([item], client, force=True, publish=False, concurrency=1)
    assert forced.status is Status.FORCED and forced.remote_sha_before == item.remote_sha
    assert plan(client, "welcome-series", with_subject("Repo")).action is Status.UNCHANGED


def test_race_between_plan_and_push_is_a_conflict(emu: Emulator, client: ManagementClient) -> None:
    (created,) = deploy([plan(client, "welcome-series", valid_payload())], client, force=False, publish=False,
                        concurrency=1)
    item = plan(client, "welcome-series", with_subject("Repo"), meta_sha=created.remote_sha_after)

    class Racing:
        def upsert_notiflow(self, handle: str, payload: dict[str, Any], *, expected_sha: str | None) -> UpsertResult:
            emu.store.dashboard_edit(PROJECT, handle)
            return client.upsert_notiflow(handle, payload, expected_sha=expected_sha)

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

    (outcome,) = deploy([item], Racing(), force=False, publish=False, concurrency=1)
    assert outcome.status is Status.CONFLICT
    assert "between the plan and the push" in outcome.detail and "Dashboard User (member)" in outcome.detail


def test_publish_refused_leaves_the_draft(client: ManagementClient) -> None:
    payload = valid_payload()
    del payload["steps"][1]["channel_handle"]  # fine for a draft, refused at publish
    (outcome,) = deploy([plan(client, "welcome-series", copy.deepcopy(payload))], client, force=False, publish=True,
                        concurrency=1)
    assert outcome.status is Status.FAILED and not outcome.published
    assert [p.code for p in outcome.errors] == ["publish-rejected"]
    assert "channel_handle" in outcome.errors[0].message
    assert "(version 1, sha " in outcome.detail and "stays on the server unpublished" in outcome.detail
    remote = client.get_notiflow("welcome-series")
    assert remote is not None and remote.current_version is not None
    assert remote.current_version.status == "draft"


def test_dashboard_edit_during_the_publish_backoff_is_a_conflict_not_their_draft_published(emu: Emulator) -> None:
    """Issue 3 audit: the publish fails (503), a dashboard edit lands while the client waits, and the
    retry must not publish the dashboard's draft."""
    with ManagementClient(emu.base_url, TOKEN, PROJECT, backoff_base=0.01) as setup:
        setup.upsert_notiflow("welcome-series", valid_payload(), expected_sha=None)
        item = plan(setup, "welcome-series", with_subject("Repo"), meta_sha=None, base=valid_payload())
    emu.fail_next("POST", "/publish$", status=503)

    def edit_while_waiting(_seconds: float) -> None:
        emu.dashboard_edit(PROJECT, "welcome-series", {"name": "Dashboard WIP"})

    with ManagementClient(emu.base_url, TOKEN, PROJECT, backoff_base=0.01, sleep=edit_while_waiting) as client:
        (outcome,) = deploy([item], client, force=False, publish=True, concurrency=1)
    remote = emu.store.get_notiflow(PROJECT, "welcome-series")
    assert remote["published_version"] is None  # nothing published: not theirs, not ours
    assert remote["name"] == "Dashboard WIP" and remote["current_version"]["status"] == "draft"
    assert outcome.status is Status.CONFLICT and not outcome.published
    assert "The draft changed on the server after our push" in outcome.detail
    assert "by Dashboard User" in outcome.detail
    posts = [r for r in emu.requests if r["method"] == "POST" and r["path"].endswith("/publish")]
    assert [r["status"] for r in posts] == [503]  # the retry was never sent


@pytest.mark.parametrize("fresh", [False, True])
def test_publish_then_rerun_with_and_without_fresh_drafts(fresh: bool) -> None:
    """The versioning docs' "a fresh draft is created" (emulator option): a fresh draft equal to the
    published version is published content, for the deployer, the client and the drift flag."""
    from notiflows_deploy.drift import publish_state

    with running_emulator(fresh_drafts=fresh) as emu, \
            ManagementClient(emu.base_url, TOKEN, PROJECT, backoff_base=0.01) as client:
        (first,) = deploy([plan(client, "welcome-series", valid_payload())], client, force=False, publish=True,
                          concurrency=1)
        assert first.status is Status.PUBLISHED and first.published and first.version == 1
        remote = client.get_notiflow("welcome-series")
        assert remote is not None and remote.published_version is not None and remote.current_version is not None
        assert remote.current_version.status == ("draft" if fresh else "published")
        assert remote.current_version.sha == remote.published_version.sha
        assert not remote.has_unpublished_changes and publish_state(remote) == {}
        (again,) = deploy([plan(client, "welcome-series", valid_payload())], client, force=False, publish=True,
                          concurrency=1)
        assert again.status is Status.UNCHANGED and again.published
        assert [r["method"] for r in emu.requests].count("POST") == 1  # no second publish
        client.publish_notiflow("welcome-series")  # publishing it anyway changes nothing
        versions = client.list_versions("welcome-series")
        assert [(v.version_number, v.status) for v in versions] == ([(2, "draft"), (1, "published")] if fresh
                                                                    else [(1, "published")])
        (update,) = deploy([plan(client, "welcome-series", with_subject("New"),
                                 meta_sha=remote.current_version.sha)], client, force=False, publish=True,
                           concurrency=1)
        assert update.status is Status.PUBLISHED and update.version == (3 if fresh else 2)
