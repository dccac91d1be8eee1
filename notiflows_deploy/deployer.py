"""Carry out a plan against the Management API: push what changed, conflict-safe, optionally publish.

I/O goes only through the injected client. Each notiflow is independent: a failure, conflict or refusal
in one never stops the others, and every one gets an outcome (in input order). Success is only
reported from what the server answered (new sha and version number), never assumed.

Decisions:
* Only WOULD_CREATE / WOULD_UPDATE are pushed, with the plan's `expected_sha` (compare-and-swap).
  `force` also pushes CONFLICT items, without `expected_sha`, reported as FORCED; under `force` a 409
  at push time (the server moved after the plan) is re-read and pushed over once, also as FORCED.
* Without `force`, a 409 is a CONFLICT explained from a fresh GET (never from the 409's details);
  if the fresh read already holds the repo's content (e.g. a concurrent deploy of the same commit),
  the outcome is UNCHANGED.
* What is pushed is the payload with the omitted optional booleans at their defaults
  (`normalize.with_defaults`), so the server ends up with what the plan compared.
* `publish`: publishes after each successful push, and also for an UNCHANGED notiflow whose current
  version is not the published one (its content equals the repo's, so publishing it publishes what is
  in the repo). A publish refusal leaves the pushed draft on the server, and the outcome says so.
  The publish carries the sha we pushed: if the draft changed on the server in between (a dashboard
  edit during a retry's wait), nothing is published and the outcome is CONFLICT. For an UNCHANGED
  notiflow the sha is the plan's (maybe minutes old), so the notiflow is read again first and nothing
  is published when its draft moved (a dashboard draft saved meanwhile must not go live).
* Every notiflow this run wrote a new version of carries `extra["pushed"] = True`, whatever happened
  at publish time (the `deployed` output lists it: a draft was written).
* A would-create answered 200 whose answer is our content as version 1 was created by this push's
  lost first attempt or a concurrent deploy of the same content: CREATED, no overwrite warning.
* Re-running after an interruption converges: the next plan re-reads the server, so what already
  landed is UNCHANGED (or "ours" through __meta.sha / the base content) and the rest is pushed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from notiflows_deploy.api.errors import ApiError, ConflictError, DraftChangedError, ValidationFailedError
from notiflows_deploy.api.models import RemoteNotiflow, UpsertResult
from notiflows_deploy.diff import mask
from notiflows_deploy.model import NotiflowOutcome, Problem, Severity, Status
from notiflows_deploy.normalize import content_from_remote, equal_content, with_defaults
from notiflows_deploy.planner import PlanItem, conflict_info, plan_outcome

PUSHED = frozenset({Status.WOULD_CREATE, Status.WOULD_UPDATE})


class DeployClient(Protocol):
    def upsert_notiflow(
        self, handle: str, payload: dict[str, Any], *, expected_sha: str | None
    ) -> UpsertResult: ...

    def publish_notiflow(self, handle: str, *, expected_sha: str | None = None) -> RemoteNotiflow: ...

    def get_notiflow(self, handle: str) -> RemoteNotiflow | None: ...


def is_published(remote: RemoteNotiflow) -> bool:
    """Is the current version the live one? (A server may keep a fresh draft equal to the published one.)"""
    current = remote.current_version
    if current is None:
        return False
    if current.status == "published":
        return True
    published = remote.published_version
    return published is not None and bool(published.sha) and published.sha == current.sha


def _describe_error(err: ApiError) -> str:
    parts = [f"code={err.code or '-'}"]
    if err.status is not None:
        parts.append(f"status={err.status}")
    if err.request_id:
        parts.append(f"request_id={err.request_id}")
    return f"{err.message} ({', '.join(parts)})"


def _field_problems(item: PlanItem, err: ValidationFailedError, code: str, what: str) -> list[Problem]:
    file = f"{item.path}/notiflow.json"
    fields = err.fields
    if not fields:
        return [Problem(file, 1, 1, code, f"{what}: {err.message}")]
    out = []
    for entry in fields:
        name = str(entry.get("field") or "(notiflow)")
        message = str(entry.get("message") or entry.get("reason") or "invalid")
        out.append(Problem(file, 1, 1, code, f"{what}: field {name}: {message}"))
    return out


class _Run:
    def __init__(self, client: DeployClient, *, force: bool, publish: bool, secrets: Collection[str]) -> None:
        self.client = client
        self.force = force
        self.publish = publish
        self.secrets = secrets

    # ---- one notiflow ----------------------------------------------------------------------------

    def one(self, item: PlanItem) -> NotiflowOutcome:
        try:
            outcome = self._one(item)
        except ApiError as err:  # an API failure not handled more precisely below
            outcome = self._base(item, Status.FAILED)
            outcome.detail = f"The Management API failed: {_describe_error(err)}."
        except Exception as err:  # a bug must not cost the other notiflows their deploy
            outcome = self._base(item, Status.FAILED)
            outcome.detail = f"Unexpected error while deploying: {type(err).__name__}: {err}."
        outcome.detail = mask(outcome.detail, self.secrets)
        outcome.diff = mask(outcome.diff, self.secrets)
        return outcome

    def _base(self, item: PlanItem, status: Status) -> NotiflowOutcome:
        return NotiflowOutcome(
            handle=item.handle,
            status=status,
            path=item.path,
            remote_sha_before=item.remote_sha,
            version_before=item.remote_version,
            errors=item.errors,
            warnings=item.warnings,
            diff=item.diff.render(self.secrets) if item.diff is not None and not item.diff.is_empty else "",
        )

    def _one(self, item: PlanItem) -> NotiflowOutcome:
        if item.action is Status.CONFLICT and self.force:
            return self._push(item, expected_sha=None, forced=True)
        if item.action in PUSHED:
            return self._push(item, expected_sha=item.expected_sha, forced=False)
        outcome = plan_outcome(item, self.secrets)
        if item.action is Status.UNCHANGED and self.publish and item.remote is not None:
            if not is_published(item.remote):
                return self._publish_unchanged(item, outcome)
            outcome.published = True
            outcome.detail += " Its current version is already the published one."
        if item.action is Status.UNCHANGED:
            outcome.remote_sha_after = item.remote_sha
        return outcome

    def _publish_unchanged(self, item: PlanItem, outcome: NotiflowOutcome) -> NotiflowOutcome:
        """Publish what the plan read, only if it is still the current version: the plan's sha may be
        minutes old, and publish has no precondition on the server."""
        already = f"The content is already on the server (version {item.remote_version})."
        fresh = self.client.get_notiflow(item.handle)
        version = fresh.current_version if fresh is not None else None
        if fresh is None or version is None or version.sha != item.remote_sha:
            outcome.status = Status.CONFLICT
            outcome.remote_sha_after = version.sha if version is not None else None
            outcome.version = version.version_number if version is not None else None
            by = f", by {_actor_name(fresh)}" if fresh is not None and _actor_name(fresh) else ""
            now = (f"version {version.version_number}, sha {version.sha}{by}" if version is not None
                   else "it is gone")
            outcome.detail = (f"{already} The draft changed on the server after the plan read it ({now}); not"
                              f" published. Version {item.remote_version} (sha {item.remote_sha}), the repo's"
                              " content, is no longer the current one.")
            return outcome
        return self._publish(item, outcome, fresh, already, pushed=False)

    def _push(self, item: PlanItem, *, expected_sha: str | None, forced: bool) -> NotiflowOutcome:
        assert item.payload is not None  # only valid items are planned for a push
        outcome = self._base(item, Status.FORCED if forced else Status.FAILED)
        try:
            answer = self.client.upsert_notiflow(item.handle, with_defaults(item.payload), expected_sha=expected_sha)
        except ConflictError:
            return self._conflict_at_push(item, outcome)
        except ValidationFailedError as err:
            outcome.status = Status.FAILED
            refused = _field_problems(item, err, "push-rejected", "The server refused the push")
            outcome.errors = [*outcome.errors, *refused]
            outcome.detail = (
                f"The server refused the push as invalid ({_describe_error(err)}); nothing changed on the server"
                " for this notiflow."
            )
            return outcome
        except ApiError as err:
            from notiflows_deploy.api.retry import may_have_landed

            outcome.status = Status.FAILED
            landed = (
                "It may or may not have reached the server"
                if may_have_landed(err)
                else "Its last attempt was never sent"
            )
            outcome.detail = (
                f"The push failed: {_describe_error(err)}. {landed}; the next run re-reads the server and converges."
            )
            return outcome
        return self._confirm(item, outcome, answer, forced=forced)

    def _conflict_at_push(self, item: PlanItem, outcome: NotiflowOutcome) -> NotiflowOutcome:
        """409: the server moved on after the plan. Learn its state from a fresh read, not from the 409."""
        assert item.payload is not None
        try:
            fresh = self.client.get_notiflow(item.handle)
        except ApiError as err:
            outcome.status = Status.CONFLICT
            outcome.detail = (
                "The server refused the push with 409 (it changed after the plan), and reading it again failed:"
                f" {_describe_error(err)}. Not pushed."
            )
            return outcome
        if fresh is not None and equal_content(item.payload, content_from_remote(fresh)):
            version = fresh.current_version
            outcome.status = Status.UNCHANGED
            outcome.remote_sha_before = outcome.remote_sha_after = version.sha if version else None
            outcome.version_before = outcome.version = version.version_number if version else None
            outcome.diff = ""
            outcome.detail = (
                "The server changed after the plan, but it now holds exactly the repo's content"
                " (another deploy pushed it); nothing to do."
            )
            return outcome
        if self.force and fresh is not None:
            version = fresh.current_version
            again = PlanItem(**{**item.__dict__, "remote": fresh,
                                "remote_sha": version.sha if version else None,
                                "remote_version": version.version_number if version else None})
            outcome = self._base(again, Status.FORCED)
            try:
                answer = self.client.upsert_notiflow(item.handle, with_defaults(item.payload), expected_sha=None)
            except ApiError as err:
                outcome.status = Status.FAILED
                outcome.detail = f"The forced push (after a 409) failed: {_describe_error(err)}."
                return outcome
            return self._confirm(again, outcome, answer, forced=True)
        outcome.status = Status.CONFLICT
        if fresh is None:
            outcome.detail = (
                "The server refused the push with 409, and the notiflow no longer exists there (deleted after the"
                " plan). Not pushed; the next run will plan to create it."
            )
            return outcome
        info = conflict_info(remote=fresh, payload=item.payload, base_payload=item.base_payload, meta_sha=item.meta_sha,
                             secret_paths=item.secret_paths)
        version = fresh.current_version
        outcome.remote_sha_before = version.sha if version else None
        # As a conflict found by the plan: the version is the server's current one (from the fresh read).
        outcome.version_before = outcome.version = version.version_number if version else None
        outcome.detail = (
            f"The server changed between the plan and the push (409 conflict); not pushed. {info.describe()}"
        )
        outcome.diff = info.view(self.secrets)
        outcome.extra["conflict"] = info.to_dict(self.secrets)
        return outcome

    def _confirm(
        self, item: PlanItem, outcome: NotiflowOutcome, answer: UpsertResult, *, forced: bool
    ) -> NotiflowOutcome:
        """Report only what the server's answer proves."""
        assert item.payload is not None
        remote = answer.notiflow
        version = remote.current_version
        if version is None or not version.sha:
            outcome.status = Status.FAILED
            outcome.detail = "The server accepted the push but its answer carries no current version; cannot confirm."
            return outcome
        outcome.remote_sha_after = version.sha
        outcome.version = version.version_number
        notes: list[str] = []
        ours = equal_content(item.payload, content_from_remote(remote))
        if not ours:
            notes.append(
                "Note: the content the server answered differs from what was pushed; the next plan will show it."
            )
            outcome.warnings = [*outcome.warnings, Problem(
                f"{item.path}/notiflow.json", 1, 1, "server-content-differs",
                "The server's answer to the push does not hold the pushed content (it may drop or rewrite fields).",
                Severity.WARNING,
            )]
        if version.sha == item.remote_sha:
            outcome.status = Status.UNCHANGED
            outcome.diff = ""
            outcome.detail = " ".join(
                [f"The server already had this content; no new version (still version {version.version_number}).",
                 *notes]
            )
        elif item.action is Status.WOULD_CREATE and not answer.created and ours and version.version_number == 1:
            # Nothing existed before our content: our own lost 201 retried, or a concurrent deploy of it.
            outcome.status = Status.CREATED
            outcome.remote_sha_before = None
            outcome.detail = " ".join(["Created as version 1 (draft): a retried or concurrent push of the same"
                                       " content (the server answered 200, not 201).", *notes])
        elif forced:
            outcome.status = Status.FORCED
            outcome.detail = " ".join(
                [f"Pushed over the server's version {item.remote_version} (sha {item.remote_sha}) because of --force;"
                 f" the server now has version {version.version_number}.", *notes]
            )
        elif answer.created:
            outcome.status = Status.CREATED
            if item.action is not Status.WOULD_CREATE:
                notes.insert(0, "Note: the server reported a creation although the notiflow existed at plan time.")
            outcome.detail = " ".join([f"Created as version {version.version_number} (draft).", *notes])
        else:
            outcome.status = Status.UPDATED
            if item.action is Status.WOULD_CREATE:
                # No precondition exists for "must not exist": the notiflow appeared between plan and push.
                outcome.remote_sha_before = None
                notes.insert(
                    0,
                    "Warning: the notiflow appeared on the server between the plan and the push and was overwritten.",
                )
                outcome.warnings = [*outcome.warnings, Problem(
                    f"{item.path}/notiflow.json", 1, 1, "created-over-existing",
                    "The notiflow was created on the server by someone else after the plan; the push overwrote it"
                    " (the API has no 'must not exist' precondition).",
                    Severity.WARNING,
                )]
            outcome.detail = " ".join(
                [f"Updated to version {version.version_number} (draft; was version {item.remote_version}).",
                 *([item.history_note] if item.history_note else []), *notes]
            )
        if outcome.status is not Status.UNCHANGED:
            outcome.extra["pushed"] = True  # a draft was written, whatever publishing does next
        if self.publish:
            return self._publish(item, outcome, remote, outcome.detail, pushed=outcome.status is not Status.UNCHANGED)
        return outcome

    def _publish(
        self, item: PlanItem, outcome: NotiflowOutcome, remote: RemoteNotiflow, before: str, *, pushed: bool
    ) -> NotiflowOutcome:
        """Publish `remote`'s current version; `remote` is a server answer (our PUT's, or a fresh read)."""
        version = remote.current_version
        number = version.version_number if version else None
        sha = version.sha if version else None
        outcome.remote_sha_after = sha  # what the answer in hand says the server holds
        outcome.version = number
        if is_published(remote):
            outcome.published = True
            outcome.detail = f"{before} Already published."
            return outcome
        stays = (f"The pushed draft (version {number}, sha {sha}) stays on the server unpublished." if pushed
                 else f"Nothing was pushed; the server's draft (version {number}, sha {sha}), which holds the"
                      " repo's content, stays unpublished.")
        try:
            # expected_sha: a retry must not publish a draft someone else saved after our push.
            answer = self.client.publish_notiflow(item.handle, expected_sha=sha or None)
        except DraftChangedError as err:
            outcome.status = Status.CONFLICT
            outcome.remote_sha_after = err.current_sha  # what the server holds now, not what we pushed
            by = f", by {err.changed_by}" if err.changed_by else ""
            now = f"sha {err.current_sha}{by}" if err.current_sha else "it is gone"
            when = "after the plan read it" if not pushed else "after our push"
            outcome.detail = (f"{before} The draft changed on the server {when} ({now}); not published."
                              f" Version {number} (sha {sha}), the repo's content, is no longer the current one.")
            return outcome
        except ValidationFailedError as err:
            outcome.status = Status.FAILED
            refused = _field_problems(item, err, "publish-rejected", "Publishing was refused")
            outcome.errors = [*outcome.errors, *refused]
            outcome.detail = f"{before} Publishing was refused as invalid ({_describe_error(err)}). {stays}"
            return outcome
        except ApiError as err:
            outcome.status = Status.FAILED
            outcome.detail = f"{before} Publishing failed: {_describe_error(err)}. {stays}"
            return outcome
        live = answer.published_version
        if live is None or live.sha != sha:
            outcome.status = Status.FAILED
            held = answer.current_version
            outcome.remote_sha_after = held.sha if held is not None else None  # from the answer, not assumed
            outcome.version = held.version_number if held is not None else None
            outcome.detail = (
                f"{before} The publish call answered, but the published version is"
                f" {'none' if live is None else f'version {live.version_number} (sha {live.sha})'},"
                f" not {'the pushed one' if pushed else 'the one holding the repo content'}. {stays}"
            )
            return outcome
        if outcome.status is not Status.FORCED:  # an overwrite stays visible as such, published or not
            outcome.status = Status.PUBLISHED
        outcome.published = True
        outcome.version = live.version_number
        outcome.remote_sha_after = live.sha
        outcome.detail = f"{before} Published version {live.version_number}."
        return outcome


def _actor_name(remote: RemoteNotiflow) -> str:
    version = remote.current_version
    actor = version.created_by if version is not None else None
    return (actor.name or actor.id or "") if actor is not None else ""


def outcome_from_plan(item: PlanItem, *, secrets: Collection[str] = ()) -> NotiflowOutcome:
    """Plan mode: the report entry of one planned notiflow (no write)."""
    return plan_outcome(item, secrets)


def deploy(
    items: Sequence[PlanItem],
    client: DeployClient,
    *,
    force: bool,
    publish: bool,
    concurrency: int,
    secrets: Collection[str] = (),
) -> list[NotiflowOutcome]:
    """Push the plan; one outcome per item, in input order."""
    run = _Run(client, force=force, publish=publish, secrets=secrets)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="nfd-deploy") as pool:
        return list(pool.map(run.one, items))


__all__ = ["DeployClient", "deploy", "is_published", "outcome_from_plan"]
