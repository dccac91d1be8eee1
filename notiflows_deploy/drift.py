"""Drift mode: does Notiflows still hold what the repo says? Never writes to Notiflows.

Every notiflow in the repo at head and every notiflow on the server (all pages) gets one class:

* ``in-sync``          the server's current version holds the head content;
* ``undeployed``       the server holds an older revision of this notiflow from the repo's history
                       (which commit; how many commits touching the notiflow, and how many commits in
                       all, it is behind head);
* ``edited-remotely``  the server holds content the repo never had (within the searched history);
* ``repo-only``        in the repo, not on the server;
* ``remote-only``      on the server, no directory in the repo (not managed by this repo);
* ``invalid`` / ``failed`` when the head files are broken or the API failed for that notiflow.

A published version that differs from the current draft is a flag (``extra["unpublished_changes"]``),
not a class: the draft is what a deploy writes, so it is what drift compares.

History stays cheap on long histories: it is read only for notiflows whose server content differs
from head, in one `git log` over the notiflows directory for all of them (grouped by handle, stopped
as soon as each has `bound` + 2 commits, and capped), and each (commit, handle) payload is loaded
once. A bound (`--history-depth`) of N searches the revision at head plus the N before it, so a
server `commits_behind: N` is found with N; 0 searches no history. A shallow clone is deepened
from `origin` when a search ran into its boundary.

`classify` is pure (fakes in, outcome out); `run_drift` does the reading: one paged listing, head
loads, and one bounded-concurrency GET per repo notiflow that exists on the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from notiflows_deploy.api.errors import ApiError
from notiflows_deploy.api.models import NotiflowSummary, RemoteNotiflow
from notiflows_deploy.api.ratelimit import run_bounded
from notiflows_deploy.diff import SecretPath, semantic_diff
from notiflows_deploy.errors import GitError
from notiflows_deploy.files import Tree
from notiflows_deploy.loader import DocumentChecker, LoadedNotiflow, list_handles, load_notiflow
from notiflows_deploy.model import NotiflowOutcome, Problem, Status
from notiflows_deploy.normalize import content_from_payload, content_from_remote, equal_content
from notiflows_deploy.secretpaths import SecretSinkLike, candidate_templates, learn, old_values

DEFAULT_HISTORY_BOUND = 50  # revisions behind head searched per notiflow, besides the one at head
NOTIFLOW_FILE = "notiflow.json"
# The one history pass reads at most bound * WALK_FACTOR commits touching the notiflows directory.
WALK_FACTOR = 200
# Deepening a shallow clone: --deepen=START, doubled each round, at most ROUNDS rounds.
DEEPEN_START = 64
DEEPEN_ROUNDS = 4
FETCH_DEPTH_FIX = "set `fetch-depth: 0` on actions/checkout"

# Why a notiflow's history search stopped before the searched commits (HistoryLookup.cut).
CUT_SHALLOW = "shallow"  # at a shallow clone's boundary
CUT_CAPPED = "capped"  # at the pass's commit cap

# Report order: what needs a human first, in-sync last.
CLASS_ORDER: tuple[Status, ...] = (
    Status.INVALID,
    Status.FAILED,
    Status.EDITED_REMOTELY,
    Status.UNDEPLOYED,
    Status.REPO_ONLY,
    Status.REMOTE_ONLY,
    Status.IN_SYNC,
)
_RANK = {status: i for i, status in enumerate(CLASS_ORDER)}

# ---------------------------------------------------------------------------------------------
# History of one notiflow


@dataclass(frozen=True)
class Revision:
    """The notiflow at one commit that touched its directory. `behind`: how many commits touching
    the notiflow came after it (0 = the newest one). `payload` is None where the notiflow was
    missing or unreadable at that commit. `secret_templates`: the fields it fills from variables, with
    their raw texts (loader.LoadedNotiflow.secret_templates), so a diff masks them on every side."""

    commit: str
    behind: int
    payload: dict[str, Any] | None
    secret_templates: Mapping[SecretPath, tuple[str, ...]] = field(default_factory=dict, compare=False)


def _no_count(_commit: str) -> int | None:
    return None


def _no_cut() -> str | None:
    return None


def _no_templates(_commit: str) -> Mapping[SecretPath, tuple[str, ...]]:
    return {}


def revisions_searched(bound: int) -> int:
    """Revisions a bound of N searches: the one at head (0 behind) and the N before it; none for 0."""
    return bound + 1 if bound > 0 else 0


class HistoryLookup:
    """Revisions of one notiflow, newest first, loaded lazily: the one at head and at most `bound`
    older ones (`revisions_searched`), so a revision `bound` commits behind head is still found.

    `commits` is called on the first iteration only (so git runs only for notiflows that differ
    from the server); it may return more shas than are searched, which tells that the history goes
    further back. `load(commit)` gives the payload at that commit.
    `cut()` (asked after `commits`) says why the list may stop short of the real history
    (`CUT_SHALLOW`, `CUT_CAPPED`, or None); `shallow=True` says so for a shallow clone up front.
    `commits_since(commit)` counts every commit from there to head (None: unknown).
    """

    def __init__(
        self,
        commits: Callable[[], Sequence[str]],
        load: Callable[[str], dict[str, Any] | None],
        *,
        bound: int = DEFAULT_HISTORY_BOUND,
        shallow: bool = False,
        cut: Callable[[], str | None] = _no_cut,
        commits_since: Callable[[str], int | None] = _no_count,
        templates: Callable[[str], Mapping[SecretPath, tuple[str, ...]]] = _no_templates,
    ) -> None:
        if bound < 0:
            raise ValueError("bound must not be negative")
        self.bound = bound
        self._shallow = shallow  # a shallow clone: older commits may exist but are not here
        self._cut = cut
        self._commits_fn = commits
        self._load = load
        self.commits_since = commits_since
        self._templates = templates  # commit -> the revision's secret locations (Revision.secret_templates)
        self.seen: dict[str, Revision] = {}  # every revision yielded, by commit (their secrets mask diffs)
        self._commits: list[str] | None = None
        self.searched = 0  # revisions yielded so far

    def _list(self) -> list[str]:
        if self._commits is None:
            self._commits = list(self._commits_fn()) if self.bound else []
        return self._commits

    def _cut_reason(self) -> str | None:
        if not self.bound:
            return None  # nothing searched: classify says so itself
        self._list()  # the cut is known once the commits are
        return self._cut()

    @property
    def shallow(self) -> bool:
        """Did the search stop at a shallow clone's boundary (older commits may exist elsewhere)?"""
        return self._shallow or self._cut_reason() == CUT_SHALLOW

    @property
    def truncated(self) -> bool:
        """May the notiflow's history go further back than what is searched? (Lists the commits.)"""
        listed = self._list()
        return self.shallow or self._cut_reason() is not None or len(listed) > revisions_searched(self.bound)

    @property
    def available(self) -> int:
        """Commits touching the notiflow within the bound."""
        return min(len(self._list()), revisions_searched(self.bound))

    def __iter__(self) -> Iterator[Revision]:
        for index, commit in enumerate(self._list()[: revisions_searched(self.bound)]):
            self.searched = max(self.searched, index + 1)
            revision = Revision(commit=commit, behind=index, payload=self._load(commit),
                                secret_templates=self._templates(commit))
            self.seen[commit] = revision
            yield revision

    @staticmethod
    def empty() -> HistoryLookup:
        """No history (not a git checkout, or history not wanted)."""
        return HistoryLookup(list, lambda _commit: None, bound=0)

    @staticmethod
    def of(revisions: Iterable[tuple[str, dict[str, Any] | None]], *, bound: int = DEFAULT_HISTORY_BOUND,
           totals: Mapping[str, int] | None = None) -> HistoryLookup:
        """From (commit, payload) pairs, newest first (tests, callers with history at hand);
        `totals`: commits from each commit to head, when known."""
        pairs = list(revisions)
        payloads = dict(pairs)
        known = dict(totals or {})
        return HistoryLookup(lambda: [c for c, _ in pairs], payloads.get, bound=bound, commits_since=known.get)


class GitSource(Protocol):
    """What drift needs from gitrepo.GitRepo."""

    def tree_at(self, commit: str, project_prefix: str) -> Tree: ...

    def walk_touches(self, head: str, root: str) -> Generator[tuple[str, set[str]], None, None]: ...

    def count_commits(self, since: str, head: str) -> int: ...

    def is_shallow(self) -> bool: ...

    def has_remote(self, name: str = ...) -> bool: ...

    def deepen(self, targets: Sequence[str], depth: int, *, remote: str = ...) -> bool: ...


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class GitHistory:
    """`git_history_fn` for `run_drift` backed by a git repository.

    One `git log` over ``<project_prefix>/<notiflows_root>`` serves every notiflow: commits are
    grouped by the handle directories they touch, and the walk stops once every wanted handle
    (`want`) has `bound` + 2 commits (head's, `bound` older ones, and one that only tells the search
    was cut short), at the
    end of the history, or after `max_walk` commits. A handle the pass did not cover gets a pass
    of its own. Each revision is loaded once per (commit, handle), trees cached per commit, without
    schema checks: only its payload matters. `deepen` fetches more of a shallow clone's history.
    The environment values a revision substitutes go into `secrets` (when given) as it is loaded,
    and its secret locations travel with it (`Revision.secret_templates`).
    """

    def __init__(
        self,
        git: GitSource,
        *,
        head: str,
        project_prefix: str,
        notiflows_root: str,
        env: Mapping[str, str],
        display_prefix: str = "",
        bound: int = DEFAULT_HISTORY_BOUND,
        shallow: bool | None = None,
        max_walk: int | None = None,
        secrets: SecretSinkLike | None = None,
    ) -> None:
        self.git = git
        self.secrets = secrets
        self.head = head
        self.project_prefix = project_prefix
        self.notiflows_root = notiflows_root
        self.env = env
        self.display_prefix = display_prefix
        self.bound = bound
        self.max_walk = max_walk if max_walk is not None else max(1, bound) * WALK_FACTOR
        self._shallow = shallow
        self._wanted: set[str] = set()
        self._found: dict[str, list[str]] = {}
        self._walked_all = False  # the last pass read the whole history (to the root or a shallow boundary)
        self._capped = False  # the last pass stopped at max_walk
        self._trees: dict[str, Tree] = {}
        self._payloads: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._templates: dict[tuple[str, str], Mapping[SecretPath, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._walk_lock = threading.Lock()
        self.log_calls = 0  # for tests and the benchmark: history must stay cheap (git log processes)
        self.loads = 0
        self.deepened = 0  # commits of depth fetched from origin

    # -- which commits touched a notiflow ----------------------------------------------------

    @property
    def shallow(self) -> bool:
        if self._shallow is None:
            self._shallow = self.git.is_shallow()
        return self._shallow

    def want(self, handles: Iterable[str]) -> None:
        """Handles whose history will be searched: the next pass covers them all at once."""
        self._wanted.update(handles)

    def _covered(self, handle: str) -> bool:
        return self._walked_all or self._capped or len(self._found.get(handle, ())) > revisions_searched(self.bound)

    def _walk(self, wanted: set[str]) -> None:
        """One pass from head: the searched commits and one more for each handle, stopping as early as allowed."""
        self.log_calls += 1
        limit = revisions_searched(self.bound) + 1
        found: dict[str, list[str]] = {}
        pending = set(wanted)
        walked, ended = 0, True
        walk = self.git.walk_touches(self.head, _join(self.project_prefix, self.notiflows_root))
        try:
            for commit, handles in walk:
                walked += 1
                for handle in handles:
                    shas = found.setdefault(handle, [])
                    if len(shas) < limit:
                        shas.append(commit)
                    if len(shas) >= limit:
                        pending.discard(handle)
                if not pending or walked >= self.max_walk:
                    ended = False
                    break
        finally:
            walk.close()
        # A later pass starts at head too, so its lists extend the earlier ones: keep the longer.
        for handle, shas in found.items():
            if len(shas) > len(self._found.get(handle, ())):
                self._found[handle] = shas
        self._walked_all = self._walked_all or ended
        self._capped = self._capped or (not ended and bool(pending))

    def commits(self, handle: str) -> list[str]:
        with self._walk_lock:
            if not self._covered(handle):
                self._walk({h for h in self._wanted | {handle} if not self._covered(h)})
            return list(self._found.get(handle, ()))

    def cut(self, handle: str) -> str | None:
        """Why `handle`'s list may stop before the searched commits although older ones exist."""
        if len(self._found.get(handle, ())) > revisions_searched(self.bound):
            return None  # the bound itself cut it, which the lookup sees from the list
        if self._capped and not self._walked_all:
            return CUT_CAPPED
        if self._walked_all and self.shallow:
            return CUT_SHALLOW
        return None

    def commits_since(self, commit: str) -> int | None:
        """Every commit after `commit` up to head (not only those touching the notiflow)."""
        try:
            return self.git.count_commits(commit, self.head)
        except (GitError, ValueError):
            return None  # a count is a detail: never let it break the classification

    # -- a shallow clone ---------------------------------------------------------------------

    def can_deepen(self) -> bool:
        return self.shallow and self.git.has_remote("origin")

    def deepen(self, depth: int) -> bool:
        """Fetch `depth` more commits behind head from origin and forget the passes made so far.
        False when nothing could be fetched."""
        if not self.can_deepen():
            return False
        ok = self.git.deepen([self.head], depth)
        self._shallow = self.git.is_shallow()
        if ok:
            self.deepened += depth
            self._found, self._walked_all, self._capped = {}, False, False
        return ok

    # -- revisions ---------------------------------------------------------------------------

    def payload_at(self, commit: str, handle: str) -> dict[str, Any] | None:
        key = (commit, handle)
        with self._lock:
            if key in self._payloads:
                return self._payloads[key]
            self.loads += 1
            try:
                tree = self._trees.get(commit)
                if tree is None:
                    tree = self._trees[commit] = self.git.tree_at(commit, self.project_prefix)
                loaded = load_notiflow(tree, notiflows_root=self.notiflows_root, handle=handle, env=self.env,
                                       checker=None, display_prefix=self.display_prefix)
            except GitError:
                loaded = None  # an unreadable old commit only narrows the search
            payload = loaded.payload if loaded is not None else None
            if loaded is not None and payload is not None:
                # A revision compared with the server is a side of its diff: its values are secrets too.
                self._templates[key] = loaded.secret_templates
                if self.secrets is not None:
                    self.secrets.update(loaded.secret_values)
            self._payloads[key] = payload
            return payload

    def templates_at(self, commit: str, handle: str) -> Mapping[SecretPath, tuple[str, ...]]:
        """The secret locations of `handle` at `commit` with their raw texts (loading it if needed)."""
        self.payload_at(commit, handle)
        with self._lock:
            return self._templates.get((commit, handle), {})

    def __call__(self, handle: str) -> HistoryLookup:
        return HistoryLookup(lambda: self.commits(handle), lambda c: self.payload_at(c, handle), bound=self.bound,
                             cut=lambda: self.cut(handle), commits_since=self.commits_since,
                             templates=lambda c: self.templates_at(c, handle))


# ---------------------------------------------------------------------------------------------
# The pure classifier


def _short(sha: str) -> str:
    return sha[:7]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _listing_ids(remote: RemoteNotiflow) -> tuple[Any, Any, bool | None]:
    """(current id, published id, never published?) from a listing item; None: the item does not say."""
    raw = remote.raw
    current_id, published_id = raw.get("current_version_id"), raw.get("published_version_id")
    never = published_id is None if "published_version_id" in raw else None
    return current_id, published_id, never


def _listing_differs(remote: RemoteNotiflow) -> tuple[bool, bool | None]:
    """(unpublished changes?, never published?) from a listing item. The server's own
    `has_unpublished_changes` wins over comparing ids: a fresh draft made by a publish has an id of
    its own but holds the published content."""
    current_id, published_id, never = _listing_ids(remote)
    if "has_unpublished_changes" in remote.raw:
        return remote.has_unpublished_changes or bool(never), never
    return bool(never) or (published_id is not None and current_id is not None and current_id != published_id), never


def publish_state(remote: RemoteNotiflow) -> dict[str, Any]:
    """The unpublished-changes flag: the published version is not the current draft (or there is
    no published version at all). Works on a full GET answer and on a listing item, which carries
    only version ids: "never published" is said only when the answer shows no published version
    (`never_published` None: the listing item does not tell)."""
    current, published = remote.current_version, remote.published_version
    if current is not None:
        never: bool | None = published is None
        differs = remote.has_unpublished_changes or published is None or published.sha != current.sha
    else:
        differs, never = _listing_differs(remote)
    if not differs:
        return {}
    return {
        "unpublished_changes": True,
        "never_published": never,
        "published_version": published.version_number if published is not None else None,
        "current_version": current.version_number if current is not None else None,
    }


def _publish_sentence(flags: Mapping[str, Any]) -> str:
    if not flags:
        return ""
    current, published = flags.get("current_version"), flags.get("published_version")
    draft = f"the current draft (v{current})" if current is not None else "the current draft"
    if flags.get("never_published"):
        return f" Never published: {draft} is not live."
    if published is not None:
        return f" The published version (v{published}) differs from {draft}."
    if flags.get("never_published") is False:
        return f" The published version differs from {draft}."
    return f" {draft[0].upper()}{draft[1:]} has unpublished changes."


def _is_live(remote: RemoteNotiflow) -> bool:
    """Is the current version's content the published one? From the versions, else from the listing."""
    current, published = remote.current_version, remote.published_version
    if current is not None:
        return current.status == "published" or (published is not None and published.sha == current.sha)
    differs, never = _listing_differs(remote)
    return never is False and not differs


def _with_remote(outcome: NotiflowOutcome, remote: RemoteNotiflow) -> NotiflowOutcome:
    current = remote.current_version
    if current is not None:
        outcome.remote_sha_before = current.sha or None
        outcome.version = current.version_number or None
    outcome.published = _is_live(remote)
    flags = publish_state(remote)
    outcome.extra.update(flags)
    outcome.detail += _publish_sentence(flags)
    return outcome


def _diff(remote_content: dict[str, Any], head: LoadedNotiflow, revisions: Iterable[Revision] = ()) -> tuple[str, str]:
    """(rendered diff server -> head, one-line summary), secrets of head masked.

    The secret locations of head and of the history `revisions` compared with the server are masked on
    both sides: after a rotation the server still holds the old value, which the value-based masking no
    longer knows, also where head stopped using the variable. A side whose value fits a raw text of the
    field (see `secretpaths.candidate_templates`) shows that text with only the variables masked.
    """
    assert head.payload is not None
    diff = semantic_diff(remote_content, content_from_payload(head.payload), old_label="server", new_label="repo",
                         secret_paths=candidate_templates(head, others=revisions))
    return diff.render(secrets=head.secret_values), diff.summary()


def _deployed(history: HistoryLookup, remote_content: Mapping[str, Any]) -> Revision | None:
    """The newest revision of `history` whose content the server holds (the search stops there)."""
    return next((r for r in history if r.payload is not None and equal_content(r.payload, remote_content)), None)


def _author(remote: RemoteNotiflow) -> str:
    actor = remote.current_version.created_by if remote.current_version is not None else None
    if actor is None or not actor.name:
        return ""
    return f"{actor.name} ({actor.type})" if actor.type else actor.name


def _undeployed(handle: str, head: LoadedNotiflow, revision: Revision, history: HistoryLookup, diff: str,
                changes: str) -> NotiflowOutcome:
    behind, total = revision.behind, history.commits_since(revision.commit)
    if behind:
        in_all = f" ({_plural(total, 'commit')} behind head in all)" if total is not None else ""
        sentence = (f"The server holds the revision of commit {_short(revision.commit)}, "
                    f"{_plural(behind, 'commit')} touching this notiflow behind head{in_all}.")
    else:
        sentence = (f"The server holds the revision of commit {_short(revision.commit)}, the latest commit "
                    f"touching this notiflow, but not the content being compared (uncommitted changes?).")
    return NotiflowOutcome(handle, Status.UNDEPLOYED, head.path, warnings=head.warnings, diff=diff,
                           detail=f"{sentence} Server -> repo: {changes}.",
                           extra={"deployed_commit": revision.commit, "commits_behind": behind,
                                  "commits_behind_total": total})


def _never_had(history: HistoryLookup, remote: RemoteNotiflow) -> str:
    """Why the server's content counts as never in the repo, and how far that claim goes."""
    searched = history.searched
    if remote.current_version is None:
        return "The server holds no current version for it."
    if history.bound == 0:
        return "The server holds content that differs from the repo's (no git history was searched)."
    if searched == 0:
        return "The server holds content that differs from the repo's (no commit touching it was found)."
    if history.truncated:
        why = "this clone is shallow" if history.shallow else "older history not searched"
        return (f"The server holds content the repo never had within the last "
                f"{_plural(searched, 'commit')} touching this notiflow ({why}).")
    return (f"The server holds content the repo never had in any of the "
            f"{_plural(searched, 'commit')} touching this notiflow.")


def classify(
    handle: str,
    head: LoadedNotiflow | None,
    remote: RemoteNotiflow | None,
    history: HistoryLookup,
    *,
    path: str = "",
) -> NotiflowOutcome:
    """One notiflow's drift class. `history` is consulted only when head and server differ.

    `path` is used when there is no head (remote-only): where the notiflow's directory would be.
    """
    where = head.path if head is not None else path
    if head is None:
        if remote is None:
            raise ValueError(f"{handle}: neither in the repo nor on the server")
        outcome = NotiflowOutcome(handle, Status.REMOTE_ONLY, where,
                                  detail="On the server, but the repo has no directory for it: "
                                         "not managed by this repo.")
        return _with_remote(outcome, remote)

    warnings = head.warnings
    if not head.ok or head.payload is None:
        outcome = NotiflowOutcome(handle, Status.INVALID, where, errors=list(head.errors), warnings=warnings,
                                  detail="Invalid at head: not compared with the server.")
        return _with_remote(outcome, remote) if remote is not None else outcome

    if remote is None:
        return NotiflowOutcome(handle, Status.REPO_ONLY, where, warnings=warnings,
                               detail="In the repo, not on the server: never deployed, or deleted on the server.")

    remote_content = content_from_remote(remote)
    if remote.current_version is not None and equal_content(head.payload, remote_content):
        outcome = NotiflowOutcome(handle, Status.IN_SYNC, where, warnings=warnings,
                                  detail="The server's current version holds the repo's content.")
        return _with_remote(outcome, remote)

    deployed = _deployed(history, remote_content) if remote.current_version is not None else None
    diff, changes = _diff(remote_content, head, history.seen.values())  # every revision compared is a side
    if deployed is not None:
        return _with_remote(_undeployed(handle, head, deployed, history, diff, changes), remote)

    sentence = _never_had(history, remote)
    author = _author(remote)
    if author:
        sentence += f" Its current version was created by {author}."
    outcome = NotiflowOutcome(handle, Status.EDITED_REMOTELY, where, warnings=warnings, diff=diff,
                              detail=f"{sentence} Server -> repo: {changes}.",
                              extra={"history_searched": history.searched,
                                     "history_complete": history.bound > 0 and not history.truncated})
    return _with_remote(outcome, remote)


def failed(handle: str, path: str, error: ApiError) -> NotiflowOutcome:
    problem = Problem(file=_join(path, NOTIFLOW_FILE), line=1, column=1, code="api-error", message=str(error))
    return NotiflowOutcome(handle, Status.FAILED, path, errors=[problem],
                           detail="The server's state could not be read, so it was not compared.")


def sort_outcomes(outcomes: Iterable[NotiflowOutcome]) -> list[NotiflowOutcome]:
    return sorted(outcomes, key=lambda o: (_RANK.get(o.status, len(_RANK)), o.handle))


# ---------------------------------------------------------------------------------------------
# The run


class ReadClient(Protocol):
    """The only calls drift may make: reads. (ManagementClient satisfies it.)"""

    def list_notiflows(self, limit: int = ...) -> list[NotiflowSummary]: ...

    def get_notiflow(self, handle: str) -> RemoteNotiflow | None: ...


def _differing(heads: Mapping[str, LoadedNotiflow], remotes: Mapping[str, RemoteNotiflow | None]) -> list[str]:
    """The handles whose history `classify` will search: valid at head, and the server's current
    version holds other content."""
    found = []
    for handle, remote in remotes.items():
        loaded = heads[handle]
        if remote is None or remote.current_version is None or not loaded.ok or loaded.payload is None:
            continue
        if not equal_content(loaded.payload, content_from_remote(remote)):
            found.append(handle)
    return found


def _learn_old_values(secrets: SecretSinkLike, head: LoadedNotiflow, remote: RemoteNotiflow | None,
                      history: HistoryLookup) -> None:
    """What the server holds for the variables of head and of the revisions compared (a rotation, or a
    field head no longer fills from its variable), read out of its text: redacted, never announced."""
    if remote is None or not head.ok or head.payload is None:
        return
    templates = candidate_templates(head, others=history.seen.values())
    learn(secrets, old_values(templates, content_from_remote(remote))[0])


def _cut_by_shallow(compared: Mapping[str, NotiflowOutcome], lookups: Mapping[str, HistoryLookup]) -> list[str]:
    return sorted(h for h, o in compared.items() if o.status is Status.EDITED_REMOTELY and lookups[h].shallow)


def _search_deeper(
    history: GitHistory,
    heads: Mapping[str, LoadedNotiflow],
    remotes: Mapping[str, RemoteNotiflow | None],
    compared: dict[str, NotiflowOutcome],
    lookups: dict[str, HistoryLookup],
) -> None:
    """Classify again, with more of a shallow clone's history fetched from origin each round, the
    notiflows whose search ran into the clone's boundary (a deployed revision may lie beyond it)."""
    depth = DEEPEN_START
    for _ in range(DEEPEN_ROUNDS):
        cut = _cut_by_shallow(compared, lookups)
        if not cut or not history.deepen(depth):
            return
        history.want(cut)
        for handle in cut:
            lookups[handle] = history(handle)
            compared[handle] = classify(handle, heads[handle], remotes[handle], lookups[handle])
        depth *= 2


def _shallow_notes(history: GitHistory | None, cut: Sequence[str]) -> list[str]:
    notes: list[str] = []
    if history is not None and history.deepened:
        notes.append(f"shallow clone: fetched {history.deepened} more commits of history from origin (--deepen) "
                     "to search for deployed revisions")
    if not cut:
        return notes
    why = ""
    if history is not None:
        why = (" (fetching more from origin did not reach it)" if history.git.has_remote("origin")
               else " (there is no `origin` remote to fetch more from)")
    shown = ", ".join(cut[:5]) + (", …" if len(cut) > 5 else "")
    notes.append(f"shallow clone: the history search for {_plural(len(cut), 'notiflow')} ({shown}) stopped at "
                 f"the clone's boundary{why}, so they show as edited-remotely although the server may hold a "
                 f"revision from an older commit; {FETCH_DEPTH_FIX} so drift can tell the two apart")
    return notes


def unpublished(outcomes: Iterable[NotiflowOutcome]) -> list[str]:
    """Handles whose current draft is not the published version (a flag, not a class)."""
    return sorted(o.handle for o in outcomes if o.extra.get("unpublished_changes"))


def run_notes(outcomes: Sequence[NotiflowOutcome]) -> list[str]:
    """Run-level facts worth a line of their own."""
    drafts = unpublished(outcomes)
    if not drafts:
        return []
    shown = ", ".join(drafts[:5]) + (", …" if len(drafts) > 5 else "")
    return [f"unpublished changes: the current draft is not the published version for "
            f"{_plural(len(drafts), 'notiflow')} ({shown})"]


def _listed(listing: Future[list[NotiflowSummary]], failures: list[str] | None) -> dict[str, NotiflowSummary] | None:
    """The server's notiflows by handle; None when the listing failed and `failures` took the reason
    (without `failures` the failure raises: that caller cannot carry it)."""
    try:
        return {s.handle: s for s in listing.result()}
    except ApiError as exc:
        if failures is None:
            raise
        failures.append(f"listing the server's notiflows failed: {exc}")
        return None


def listing_failed_note(failures: Sequence[str]) -> str:
    return (f"{failures[-1]}; every repo notiflow was compared with its own GET, but notiflows on the server "
            "that the repo lacks (remote-only) could not be looked for")


def run_drift(
    *,
    repo_tree: Tree,
    notiflows_root: str,
    display_prefix: str = "",
    env: Mapping[str, str],
    client: ReadClient,
    git_history_fn: Callable[[str], HistoryLookup] | None = None,
    repo: GitSource | None = None,
    head: str | None = None,
    history_depth: int = DEFAULT_HISTORY_BOUND,
    concurrency: int = 4,
    checker: DocumentChecker | None = None,
    secrets: set[str] | None = None,
    notes: list[str] | None = None,
    failures: list[str] | None = None,
) -> list[NotiflowOutcome]:
    """Classify every notiflow of the repo at head and every notiflow on the server.

    Reads only: one paged listing (overlapped with loading the repo), then one GET per repo
    notiflow that is valid and listed, at most `concurrency` at a time (the client's shared gate
    and retries absorb 429s). A failed GET makes that notiflow ``failed`` and the others carry on.
    A failed listing is an API failure of the run: with `failures` given it is appended there (the
    caller makes the run ``failed``), every valid repo notiflow is compared with its own GET (a 404
    is ``repo-only``), and a note says remote-only notiflows could not be looked for; without
    `failures` it raises.

    History: `git_history_fn(handle)`, else a `GitHistory` over `repo` at `head` searching
    `history_depth` commits per notiflow (0: none), else none (every difference is
    ``edited-remotely``). A `GitHistory` gets the differing handles up front (one git pass for all)
    and deepens a shallow clone from origin when a search ran into its boundary.
    Every environment value substituted at head or in a history revision compared, and every value the
    server holds for those variables (read out of its text where it fits their raw texts; see
    `secretpaths`; learned, not announced), is added to `secrets` (when given) so the caller can mask
    it; secret values never travel inside the outcomes. Run-level facts
    (shallow clone, unpublished drafts) are appended to `notes` when given.
    """
    if git_history_fn is None and repo is not None and head is not None:
        git_history_fn = GitHistory(repo, head=head, project_prefix=display_prefix, notiflows_root=notiflows_root,
                                    env=env, display_prefix=display_prefix, bound=history_depth, secrets=secrets)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nfd-list") as background:
        listing = background.submit(client.list_notiflows)
        handles = list_handles(repo_tree, notiflows_root)
        heads = {
            h: load_notiflow(repo_tree, notiflows_root=notiflows_root, handle=h, env=env, checker=checker,
                             display_prefix=display_prefix)
            for h in handles
        }
        listed = _listed(listing, failures)
    summaries = listed if listed is not None else {}
    if listed is None and notes is not None and failures:
        notes.append(listing_failed_note(failures))

    wanted = [h for h in handles
              if (listed is None or h in summaries) and heads[h].ok and heads[h].payload is not None]
    fetched = dict(zip(wanted, run_bounded(client.get_notiflow, wanted, concurrency), strict=True))

    outcomes: list[NotiflowOutcome] = []
    remotes: dict[str, RemoteNotiflow | None] = {}
    for handle in handles:
        loaded = heads[handle]
        answer = fetched.get(handle)
        if isinstance(answer, ApiError):
            outcomes.append(failed(handle, loaded.path, answer))
            continue
        if isinstance(answer, Exception):
            raise answer  # a bug, not an API answer: let the caller's catch-all report it
        remote = answer
        if remote is None and handle in summaries and not loaded.ok:
            remote = RemoteNotiflow.from_json(summaries[handle].raw)  # invalid: listing facts suffice
        remotes[handle] = remote
        if secrets is not None:
            secrets.update(loaded.secret_values)

    git_history = git_history_fn if isinstance(git_history_fn, GitHistory) else None
    if git_history is not None:
        git_history.want(_differing(heads, remotes))
    history_for = git_history_fn or (lambda _handle: HistoryLookup.empty())
    lookups = {handle: history_for(handle) for handle in remotes}
    compared = {handle: classify(handle, heads[handle], remotes[handle], lookups[handle]) for handle in remotes}
    if git_history is not None:
        _search_deeper(git_history, heads, remotes, compared, lookups)
    if secrets is not None:
        for handle, lookup in lookups.items():
            _learn_old_values(secrets, heads[handle], remotes[handle], lookup)
    outcomes.extend(compared.values())

    base = _join(display_prefix, notiflows_root)
    for handle, summary in summaries.items():
        if handle not in heads:
            remote = RemoteNotiflow.from_json(summary.raw)  # metadata only: no content needed
            outcomes.append(classify(handle, None, remote, HistoryLookup.empty(), path=_join(base, handle)))
    if notes is not None:
        notes.extend(_shallow_notes(git_history, _cut_by_shallow(compared, lookups)))
        notes.extend(run_notes(outcomes))
    return sort_outcomes(outcomes)


# ---------------------------------------------------------------------------------------------
# A small view for reports (pure)


def counts_by_class(outcomes: Iterable[NotiflowOutcome]) -> dict[str, int]:
    """Counts per class in report order (classes with no notiflow omitted)."""
    tally: dict[Status, int] = {}
    for o in outcomes:
        tally[o.status] = tally.get(o.status, 0) + 1
    ordered = sorted(tally, key=lambda s: _RANK.get(s, len(_RANK)))
    return {s.value: tally[s] for s in ordered}
