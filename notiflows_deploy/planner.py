"""What a deploy would do to one notiflow: the conflict rule of CONTRACT section 7.

Pure. The inputs are what the loader found in the repo (head and base) and what the server holds;
the output is one `PlanItem` with an action, the sha to send as `expected_sha`, a semantic diff
(server -> repo) and, for a conflict, everything needed to explain it.

`secret_paths` (from the loader) are masked wherever content is displayed, on every side; the decisions
themselves always compare the real values. Given as a mapping to raw texts (`diff.SecretTemplates`, see
`secretpaths.secret_view`), a field whose value fits its raw text shows that text with only the variables
masked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from notiflows_deploy.api.models import RemoteNotiflow
from notiflows_deploy.diff import NotiflowDiff, SecretPath, mask, semantic_diff, three_way
from notiflows_deploy.model import NotiflowOutcome, Problem, Severity, Status
from notiflows_deploy.normalize import content_from_payload, content_from_remote, equal_content, with_defaults

REPO_LABEL = "repo@head"


@dataclass(frozen=True)
class KnownContent:
    """Content the repo held at some commit other than the base: the server holding it is "ours" too.

    E.g. a pull request's base branch tip: once main moved on and was deployed, the server holds
    main's content, which is neither the merge base's nor what __meta.sha records.
    """

    payload: dict[str, Any]
    source: str  # "the base branch tip 1a2b3c4d5e6f (pull_request.base.sha)"


@dataclass(frozen=True)
class PlanInput:
    handle: str
    path: str  # repo-relative notiflow dir
    payload: dict[str, Any] | None  # at head; None when invalid or removed
    problems: list[Problem]  # errors+warnings from loading (invalid when any error)
    meta_sha: str | None  # __meta.sha recorded in the repo at head
    base_payload: dict[str, Any] | None  # payload at the base commit (None: new in range or unknown)
    remote: RemoteNotiflow | None  # the server's notiflow (None: does not exist)
    removed: bool = False  # directory deleted in the range
    # Fields head fills from environment variables (LoadedNotiflow.secret_paths): shown as *** on every side,
    # or (a mapping to their raw texts, `secretpaths.SecretView.templates`) with only the variables masked.
    secret_paths: Collection[SecretPath] = frozenset()
    # More content that counts as ours (CONTRACT section 7 widened for pull requests, see
    # KnownContent); the diff and the three-way view still use `base_payload`.
    also_ours: tuple[KnownContent, ...] = ()


@dataclass(frozen=True)
class ConflictInfo:
    """Why the server's current version is not "ours", with the facts the API gives about it."""

    recorded_sha: str | None  # __meta.sha in the repo
    server_sha: str | None
    server_version: int | None
    changed_at: str | None  # current_version.inserted_at
    changed_by: str | None  # "Ada Lovelace (member)"
    base_content: dict[str, Any] | None
    repo_content: dict[str, Any]
    server_content: dict[str, Any]
    secret_paths: Collection[SecretPath] = frozenset()

    def describe(self) -> str:
        """One sentence of facts: which server version, when, by whom, against what the repo recorded."""
        version = f"version {self.server_version}" if self.server_version is not None else "the current version"
        text = f"The server holds {version} (sha {_short_sha(self.server_sha)})"
        if self.changed_at or self.changed_by:
            text += ", created"
            if self.changed_at:
                text += f" at {self.changed_at}"
            if self.changed_by:
                text += f" by {self.changed_by}"
        recorded = f"sha {_short_sha(self.recorded_sha)}" if self.recorded_sha else "no sha (no __meta.sha)"
        return text + f"; the repo recorded {recorded}."

    def view(self, secrets: Collection[str] = ()) -> str:
        """The three-way view (base, repo, server), secret values and secret locations masked."""
        return three_way(self.base_content, self.repo_content, self.server_content, secrets=secrets,
                         secret_paths=self.secret_paths)

    def to_dict(self, secrets: Collection[str] = ()) -> dict[str, Any]:
        """The facts, for the JSON report; the three-way view itself is the outcome's `diff`."""
        return {
            "recorded_sha": self.recorded_sha,
            "server_sha": self.server_sha,
            "server_version": self.server_version,
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
        }


@dataclass
class PlanItem:
    handle: str
    path: str
    action: Status  # WOULD_CREATE, WOULD_UPDATE, UNCHANGED, CONFLICT, INVALID, REMOVED
    expected_sha: str | None
    remote_sha: str | None
    remote_version: int | None
    diff: NotiflowDiff | None
    reason: str
    conflict: ConflictInfo | None
    problems: list[Problem]
    payload: dict[str, Any] | None
    # Kept for the deployer: to explain a conflict found at push time and to decide about publishing.
    remote: RemoteNotiflow | None = None
    meta_sha: str | None = None
    base_payload: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    secret_paths: Collection[SecretPath] = frozenset()
    # Set when the git history made the server's content ours (`adopt_revision`): said again after the push.
    history_note: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is not Severity.ERROR]


def _short_sha(sha: str | None) -> str:
    return (sha[:12] if len(sha) > 12 else sha) if sha else "?"


def _actor(remote: RemoteNotiflow) -> str | None:
    version = remote.current_version
    if version is None or version.created_by is None:
        return None
    actor = version.created_by
    name = actor.name or actor.id
    if not name:
        return actor.type or None
    return f"{name} ({actor.type})" if actor.type else name


def conflict_info(
    *, remote: RemoteNotiflow, payload: Mapping[str, Any], base_payload: Mapping[str, Any] | None, meta_sha: str | None,
    secret_paths: Collection[SecretPath] = frozenset(),
) -> ConflictInfo:
    version = remote.current_version
    return ConflictInfo(
        recorded_sha=meta_sha,
        server_sha=version.sha if version else None,
        server_version=version.version_number if version else None,
        changed_at=version.inserted_at if version else None,
        changed_by=_actor(remote),
        base_content=content_from_payload(with_defaults(base_payload)) if base_payload is not None else None,
        repo_content=content_from_payload(with_defaults(payload)),
        server_content=content_from_remote(remote),
        secret_paths=secret_paths,
    )


def server_label(remote: RemoteNotiflow | None) -> str:
    version = remote.current_version if remote else None
    if version is None:
        return "server"
    return f"server@v{version.version_number}" if version.version_number is not None else "server@v?"


def is_ours(
    remote: RemoteNotiflow, *, meta_sha: str | None, base_payload: Mapping[str, Any] | None,
    also_ours: tuple[KnownContent, ...] = (),
) -> str:
    """Why the server's current version is ours ("" when it is not): "sha" (recorded sha), "base"
    (the base commit's content), or the `source` of the KnownContent it equals."""
    version = remote.current_version
    if meta_sha and version is not None and version.sha == meta_sha:
        return "sha"
    server = content_from_remote(remote)
    if base_payload is not None and equal_content(base_payload, server):
        return "base"
    for known in also_ours:
        if equal_content(known.payload, server):
            return known.source
    return ""


def _ours_reason(ours: str, version: int | None, summary: str) -> str:
    if ours == "sha":
        held = "is the one recorded in __meta.sha"
    elif ours == "base":
        held = "holds what the base commit had"
    else:
        held = f"holds what {ours} has"
    return f"The server's current version ({version}) {held}; the repo's changes would be pushed ({summary})."


def plan_one(inp: PlanInput) -> PlanItem:
    remote = inp.remote
    version = remote.current_version if remote else None
    item = PlanItem(
        handle=inp.handle,
        path=inp.path,
        action=Status.INVALID,
        expected_sha=None,
        remote_sha=version.sha if version else None,
        remote_version=version.version_number if version else None,
        diff=None,
        reason="",
        conflict=None,
        problems=list(inp.problems),
        payload=inp.payload,
        remote=remote,
        meta_sha=inp.meta_sha,
        base_payload=inp.base_payload,
        secret_paths=inp.secret_paths,
    )
    if inp.removed:
        item.action = Status.REMOVED
        item.payload = None
        where = (
            f"the server still has it (version {item.remote_version}); delete it in the dashboard if it should go"
            if remote is not None
            else "the server does not have it either"
        )
        item.reason = f"The notiflow directory was deleted in this range; nothing is deleted on the server and {where}."
        return item
    errors = item.errors
    if errors or inp.payload is None:
        item.action = Status.INVALID
        item.reason = (
            f"{len(errors)} error{'s' if len(errors) != 1 else ''} in the local files; not pushed."
            if errors
            else "No payload could be built from the local files; not pushed."
        )
        return item
    payload = inp.payload
    if remote is None:
        item.action = Status.WOULD_CREATE
        item.diff = semantic_diff(None, payload, old_label="(none)", new_label=REPO_LABEL,
                                  secret_paths=inp.secret_paths)
        item.reason = (
            f"The server has no notiflow {inp.handle!r} although the repo recorded sha {_short_sha(inp.meta_sha)}"
            " (deleted on the server?); it would be created again."
            if inp.meta_sha
            else f"The server has no notiflow {inp.handle!r}; it would be created."
        )
        return item
    server = content_from_remote(remote)
    label = server_label(remote)
    if equal_content(payload, server):
        item.action = Status.UNCHANGED
        item.expected_sha = item.remote_sha
        item.reason = f"The server's current version ({item.remote_version}) already has this content; no write."
        if inp.meta_sha and inp.meta_sha != item.remote_sha:
            item.notes.append("Its sha differs from __meta.sha (normal after a CI deploy); content is what counts.")
        return item
    ours = is_ours(remote, meta_sha=inp.meta_sha, base_payload=inp.base_payload, also_ours=inp.also_ours)
    # With the defaults a push carries: a dashboard's `active: false` shows as what the push changes.
    item.diff = semantic_diff(server, with_defaults(payload), old_label=label, new_label=REPO_LABEL,
                              secret_paths=inp.secret_paths)
    if ours:
        item.action = Status.WOULD_UPDATE
        item.expected_sha = item.remote_sha
        item.reason = _ours_reason(ours, item.remote_version, item.diff.summary())
        return item
    item.action = Status.CONFLICT
    item.conflict = conflict_info(remote=remote, payload=payload, base_payload=inp.base_payload, meta_sha=inp.meta_sha,
                                  secret_paths=inp.secret_paths)
    if inp.base_payload is None and not inp.meta_sha:
        why = (
            "the repo has no record of it (no __meta.sha, no base revision), so it may hold edits made outside git"
        )
    elif inp.base_payload is not None and equal_content(inp.base_payload, payload):
        why = "it was changed outside git while the repo's content stayed as at the base"
    else:
        also = "".join(f" nor {known.source}" for known in inp.also_ours)
        why = (f"it matches neither __meta.sha nor the base commit's content{also}"
               " (changed outside git, e.g. in the dashboard)")
    item.reason = (
        f"The server's current version ({item.remote_version}) differs from the repo and {why};"
        " not pushed (use --force to overwrite)."
    )
    if inp.base_payload is not None or inp.meta_sha:
        item.notes.append(STALE_NOTE)
    return item


# Until the history search (`adopt_revision`) ran: it replaces this note by its own finding.
STALE_NOTE = (
    "If the server holds an older revision from this repo (an earlier deploy that failed or was skipped),"
    " the three-way view shows it as server-side changes; --force pushes the repo's version."
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def mask_more(item: PlanItem, secret_paths: Collection[SecretPath]) -> None:
    """Show a conflict with more secret locations masked (found in the history searched after the plan):
    its diff and three-way view are rebuilt with `secret_paths`."""
    if item.action is not Status.CONFLICT or item.remote is None or item.payload is None:
        return
    item.secret_paths = secret_paths
    item.diff = semantic_diff(content_from_remote(item.remote), with_defaults(item.payload),
                              old_label=server_label(item.remote), new_label=REPO_LABEL, secret_paths=secret_paths)
    if item.conflict is not None:
        item.conflict = replace(item.conflict, secret_paths=secret_paths)


def adopt_revision(item: PlanItem, payload: dict[str, Any], *, commit: str, behind: int) -> None:
    """A conflict whose server content is this notiflow's content at `commit` of the repo's own history
    (`behind` commits touching it before head): ours after all, the history being the authority on what
    the repo had (an earlier deploy failed, or its run was dropped for a newer one). Pushed with the
    server's sha; the diff and, should the push meet a 409, the three-way view start from that revision."""
    assert item.payload is not None and item.remote is not None
    short = commit[:12]
    where = (f"{_plural(behind, 'commit')} touching this notiflow before head" if behind
             else "the last commit touching this notiflow; the working tree differs")
    item.action = Status.WOULD_UPDATE
    item.expected_sha = item.remote_sha
    item.conflict = None
    item.base_payload = payload
    item.notes = [n for n in item.notes if n != STALE_NOTE]
    item.diff = semantic_diff(content_from_remote(item.remote), with_defaults(item.payload),
                              old_label=f"{server_label(item.remote)} = repo@{short}", new_label=REPO_LABEL,
                              secret_paths=item.secret_paths)
    item.history_note = (f"The server held this repo's own revision from commit {short} ({where}); every change"
                         " since then was pushed.")
    item.reason = (
        f"The server's current version ({item.remote_version}) holds this repo's own revision from commit {short}"
        f" ({where}), so it is ours: an earlier deploy failed or was skipped (e.g. a pending run replaced by a"
        f" newer one); the repo's changes since then would be pushed ({item.diff.summary()})."
    )


def env_conflict(item: PlanItem, names: Collection[str], unset: Collection[str] = ()) -> None:
    """A conflict where the server differs from the base commit only in fields filled from environment
    variables: a rotated secret or a renamed variable, not a dashboard edit. Still a conflict (a dashboard
    edit of such a field would look the same), explained as such. Only names, never values."""
    listed = ", ".join(sorted(names))
    item.notes = [n for n in item.notes if n != STALE_NOTE]
    item.reason = (
        f"The server's current version ({item.remote_version}) differs from the repo; not pushed. The server"
        f" differs from the base commit only in fields filled from environment variables ({listed}): if a value"
        " changed since the last deploy (a rotated secret), this is no dashboard edit: deploy with --force to push"
        " the new value."
    )
    if unset:
        item.notes.append(f"Not set in this run's environment: {', '.join(sorted(unset))} (renamed or removed"
                          " variables cannot fill the base commit's content).")


def plan_outcome(item: PlanItem, secrets: Collection[str] = ()) -> NotiflowOutcome:
    """The report entry for plan mode (no write happened)."""
    detail = " ".join([item.reason, *item.notes])
    diff = item.diff.render(secrets) if item.diff is not None and not item.diff.is_empty else ""
    extra: dict[str, Any] = {}
    if item.conflict is not None:
        detail = f"{detail} {item.conflict.describe()}"
        extra["conflict"] = item.conflict.to_dict(secrets)
        diff = item.conflict.view(secrets)
    if item.diff is not None:
        extra["summary"] = item.diff.summary()
    return NotiflowOutcome(
        handle=item.handle,
        status=item.action,
        path=item.path,
        remote_sha_before=item.remote_sha,
        version_before=item.remote_version,
        version=item.remote_version,
        errors=item.errors,
        warnings=item.warnings,
        diff=diff,
        detail=mask(detail, secrets),
        extra=extra,
    )
