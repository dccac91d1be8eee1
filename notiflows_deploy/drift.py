"""Drift mode: does Notiflows still hold what the repo says? Never writes to Notiflows.

Every notiflow in the repo at head and every notiflow on the server (all pages) gets one class:

* ``in-sync``          the server's current version holds the head content;
* ``undeployed``       the server holds an older revision of this notiflow from the repo's history
                       (which commit, and how many commits touching the notiflow it is behind);
* ``edited-remotely``  the server holds content the repo never had (within the searched history);
* ``repo-only``        in the repo, not on the server;
* ``remote-only``      on the server, no directory in the repo (not managed by this repo);
* ``invalid`` / ``failed`` when the head files are broken or the API failed for that notiflow.

A published version that differs from the current draft is a flag (``extra["unpublished_changes"]``),
not a class: the draft is what a deploy writes, so it is what drift compares.

History stays cheap on long histories: it is read only for notiflows whose server content differs
from head, only through ``git log`` limited to that notiflow's directory, at most `bound` commits,
and each (commit, handle) payload is loaded once.

`classify` is pure (fakes in, outcome out); `run_drift` does the reading: one paged listing, head
loads, and one bounded-concurrency GET per repo notiflow that exists on the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from notiflows_deploy.api.errors import ApiError
from notiflows_deploy.api.models import NotiflowSummary, RemoteNotiflow
from notiflows_deploy.api.ratelimit import run_bounded
from notiflows_deploy.diff import semantic_diff
from notiflows_deploy.errors import GitError
from notiflows_deploy.files import Tree
from notiflows_deploy.loader import DocumentChecker, LoadedNotiflow, list_handles, load_notiflow
from notiflows_deploy.model import NotiflowOutcome, Problem, Status
from notiflows_deploy.normalize import content_from_payload, content_from_remote, same_content
from notiflows_deploy.secretpaths import old_values

DEFAULT_HISTORY_BOUND = 50
NOTIFLOW_FILE = "notiflow.json"

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
    missing or unreadable at that commit."""

    commit: str
    behind: int
    payload: dict[str, Any] | None


class HistoryLookup:
    """Older revisions of one notiflow, newest first, loaded lazily and at most `bound` of them.

    `commits` is called on the first iteration only (so `git log` runs only for notiflows that
    differ from the server); it may return more than `bound` shas, which tells that the history
    goes further back than what is searched. `load(commit)` gives the payload at that commit.
    """

    def __init__(
        self,
        commits: Callable[[], Sequence[str]],
        load: Callable[[str], dict[str, Any] | None],
        *,
        bound: int = DEFAULT_HISTORY_BOUND,
        shallow: bool = False,
    ) -> None:
        if bound < 0:
            raise ValueError("bound must not be negative")
        self.bound = bound
        self.shallow = shallow  # a shallow clone: older commits may exist but are not here
        self._commits_fn = commits
        self._load = load
        self._commits: list[str] | None = None
        self.searched = 0  # revisions yielded so far

    def _list(self) -> list[str]:
        if self._commits is None:
            self._commits = list(self._commits_fn()) if self.bound else []
        return self._commits

    @property
    def truncated(self) -> bool:
        """May the notiflow's history go further back than what is searched? (Lists the commits.)"""
        return self.shallow or len(self._list()) > self.bound

    @property
    def available(self) -> int:
        """Commits touching the notiflow within the bound."""
        return min(len(self._list()), self.bound)

    def __iter__(self) -> Iterator[Revision]:
        for index, commit in enumerate(self._list()[: self.bound]):
            self.searched = max(self.searched, index + 1)
            yield Revision(commit=commit, behind=index, payload=self._load(commit))

    @staticmethod
    def empty() -> HistoryLookup:
        """No history (not a git checkout, or history not wanted)."""
        return HistoryLookup(list, lambda _commit: None, bound=0)

    @staticmethod
    def of(revisions: Iterable[tuple[str, dict[str, Any] | None]], *, bound: int = DEFAULT_HISTORY_BOUND
           ) -> HistoryLookup:
        """From (commit, payload) pairs, newest first (tests, callers with history at hand)."""
        pairs = list(revisions)
        payloads = dict(pairs)
        return HistoryLookup(lambda: [c for c, _ in pairs], payloads.get, bound=bound)


class GitSource(Protocol):
    """What drift needs from gitrepo.GitRepo."""

    def tree_at(self, commit: str, project_prefix: str) -> Tree: ...

    def log_paths(self, path: str, head: str, max_count: int) -> list[str]: ...


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class GitHistory:
    """`git_history_fn` for `run_drift` backed by a git repository.

    Lists only the commits that touched ``<project_prefix>/<notiflows_root>/<handle>`` (up to
    `bound` + 1, the extra one only to know whether the search was cut short) and loads each
    revision once per (commit, handle); trees are cached per commit. Revisions are loaded without
    schema checks: only their payload matters.
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
        shallow: bool = False,
    ) -> None:
        self.git = git
        self.shallow = shallow
        self.head = head
        self.project_prefix = project_prefix
        self.notiflows_root = notiflows_root
        self.env = env
        self.display_prefix = display_prefix
        self.bound = bound
        self._trees: dict[str, Tree] = {}
        self._payloads: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._lock = threading.Lock()
        self.log_calls = 0  # for tests and the benchmark: history must stay cheap
        self.loads = 0

    def commits(self, handle: str) -> list[str]:
        self.log_calls += 1
        directory = _join(self.project_prefix, self.notiflows_root, handle)
        return self.git.log_paths(directory, self.head, self.bound + 1)

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
                payload = load_notiflow(tree, notiflows_root=self.notiflows_root, handle=handle, env=self.env,
                                        checker=None, display_prefix=self.display_prefix).payload
            except GitError:
                payload = None  # an unreadable old commit only narrows the search
            self._payloads[key] = payload
            return payload

    def __call__(self, handle: str) -> HistoryLookup:
        return HistoryLookup(lambda: self.commits(handle), lambda c: self.payload_at(c, handle), bound=self.bound,
                             shallow=self.shallow)


# ---------------------------------------------------------------------------------------------
# The pure classifier


def _short(sha: str) -> str:
    return sha[:7]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def publish_state(remote: RemoteNotiflow) -> dict[str, Any]:
    """The unpublished-changes flag: the published version is not the current draft (or there is
    no published version at all). Works on a full GET answer and on a listing item."""
    current, published = remote.current_version, remote.published_version
    if current is not None:
        differs = remote.has_unpublished_changes or published is None or published.sha != current.sha
    else:  # listing item: only ids
        current_id, published_id = remote.raw.get("current_version_id"), remote.raw.get("published_version_id")
        differs = remote.has_unpublished_changes or (current_id is not None and current_id != published_id)
    if not differs:
        return {}
    return {
        "unpublished_changes": True,
        "published_version": published.version_number if published is not None else None,
        "current_version": current.version_number if current is not None else None,
    }


def _publish_sentence(flags: Mapping[str, Any]) -> str:
    if not flags:
        return ""
    current, published = flags.get("current_version"), flags.get("published_version")
    draft = f"the current draft (v{current})" if current is not None else "the current draft"
    if published is None:
        return f" Never published: {draft} is not live."
    return f" The published version (v{published}) differs from {draft}."


def _with_remote(outcome: NotiflowOutcome, remote: RemoteNotiflow) -> NotiflowOutcome:
    current = remote.current_version
    if current is not None:
        outcome.remote_sha_before = current.sha or None
        outcome.version = current.version_number or None
        outcome.published = current.status == "published"
    flags = publish_state(remote)
    outcome.extra.update(flags)
    outcome.detail += _publish_sentence(flags)
    return outcome


def _diff(remote_content: dict[str, Any], head: LoadedNotiflow) -> tuple[str, str]:
    """(rendered diff server -> head, one-line summary), secrets of head masked.

    Head's secret locations are masked on the server side too: after a rotation the server still holds
    the old value, which the value-based masking no longer knows. A side whose value fits head's raw text
    of the field shows that text with only the variables masked.
    """
    assert head.payload is not None
    diff = semantic_diff(remote_content, content_from_payload(head.payload), old_label="server", new_label="repo",
                         secret_paths=head.secret_templates)
    return diff.render(secrets=head.secret_values), diff.summary()


def _author(remote: RemoteNotiflow) -> str:
    actor = remote.current_version.created_by if remote.current_version is not None else None
    if actor is None or not actor.name:
        return ""
    return f"{actor.name} ({actor.type})" if actor.type else actor.name


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
    if remote.current_version is not None and same_content(head.payload, remote_content):
        outcome = NotiflowOutcome(handle, Status.IN_SYNC, where, warnings=warnings,
                                  detail="The server's current version holds the repo's content.")
        return _with_remote(outcome, remote)

    diff, changes = _diff(remote_content, head)
    if remote.current_version is not None:
        for revision in history:
            if revision.payload is not None and same_content(revision.payload, remote_content):
                behind = revision.behind
                sentence = (
                    f"The server holds the revision of commit {_short(revision.commit)}, "
                    f"{_plural(behind, 'commit')} touching this notiflow behind head."
                    if behind else
                    f"The server holds the revision of commit {_short(revision.commit)}, the latest commit "
                    f"touching this notiflow, but not the content being compared (uncommitted changes?)."
                )
                outcome = NotiflowOutcome(handle, Status.UNDEPLOYED, where, warnings=warnings, diff=diff,
                                          detail=f"{sentence} Server -> repo: {changes}.",
                                          extra={"deployed_commit": revision.commit, "commits_behind": behind})
                return _with_remote(outcome, remote)

    searched = history.searched
    if remote.current_version is None:
        sentence = "The server holds no current version for it."
    elif history.bound == 0:
        sentence = "The server holds content that differs from the repo's (no git history was searched)."
    elif searched == 0:
        sentence = "The server holds content that differs from the repo's (no commit touching it was found)."
    elif history.truncated:
        why = "this clone is shallow" if history.shallow else "older history not searched"
        sentence = (f"The server holds content the repo never had within the last "
                    f"{_plural(searched, 'commit')} touching this notiflow ({why}).")
    else:
        sentence = (f"The server holds content the repo never had in any of the "
                    f"{_plural(searched, 'commit')} touching this notiflow.")
    author = _author(remote)
    if author:
        sentence += f" Its current version was created by {author}."
    outcome = NotiflowOutcome(handle, Status.EDITED_REMOTELY, where, warnings=warnings, diff=diff,
                              detail=f"{sentence} Server -> repo: {changes}.",
                              extra={"history_searched": searched,
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


class ShallowAware(GitSource, Protocol):
    def is_shallow(self) -> bool: ...


def run_drift(
    *,
    repo_tree: Tree,
    notiflows_root: str,
    display_prefix: str = "",
    env: Mapping[str, str],
    client: ReadClient,
    git_history_fn: Callable[[str], HistoryLookup] | None = None,
    repo: ShallowAware | None = None,
    head: str | None = None,
    history_depth: int = DEFAULT_HISTORY_BOUND,
    concurrency: int = 4,
    checker: DocumentChecker | None = None,
    secrets: set[str] | None = None,
) -> list[NotiflowOutcome]:
    """Classify every notiflow of the repo at head and every notiflow on the server.

    Reads only: one paged listing (overlapped with loading the repo), then one GET per repo
    notiflow that is valid and listed, at most `concurrency` at a time (the client's shared gate
    and retries absorb 429s). A listing failure raises (nothing can be classified without it); a
    failed GET makes that notiflow ``failed`` and the others carry on.

    History: `git_history_fn(handle)`, else a `GitHistory` over `repo` at `head` searching
    `history_depth` commits per notiflow, else none (every difference is ``edited-remotely``).
    Every environment value substituted at head, and every value the server holds for those variables
    (read out of its text where it fits head's; see `secretpaths`), is added to `secrets` (when given)
    so the caller can mask it; secret values never travel inside the outcomes.
    """
    if git_history_fn is None and repo is not None and head is not None:
        git_history_fn = GitHistory(repo, head=head, project_prefix=display_prefix, notiflows_root=notiflows_root,
                                    env=env, display_prefix=display_prefix, bound=history_depth,
                                    shallow=repo.is_shallow())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nfd-list") as background:
        listing = background.submit(client.list_notiflows)
        handles = list_handles(repo_tree, notiflows_root)
        heads = {
            h: load_notiflow(repo_tree, notiflows_root=notiflows_root, handle=h, env=env, checker=checker,
                             display_prefix=display_prefix)
            for h in handles
        }
        summaries = {s.handle: s for s in listing.result()}

    wanted = [h for h in handles if h in summaries and heads[h].ok and heads[h].payload is not None]
    fetched = dict(zip(wanted, run_bounded(client.get_notiflow, wanted, concurrency), strict=True))

    history_for = git_history_fn or (lambda _handle: HistoryLookup.empty())
    outcomes: list[NotiflowOutcome] = []
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
        if secrets is not None:
            secrets.update(loaded.secret_values)
            if remote is not None and loaded.ok:  # what the server holds for head's variables (a rotation)
                secrets.update(old_values(loaded.secret_templates, content_from_remote(remote))[0])
        outcome = classify(handle, loaded, remote, history_for(handle))
        outcomes.append(outcome)
    base = _join(display_prefix, notiflows_root)
    for handle, summary in summaries.items():
        if handle not in heads:
            remote = RemoteNotiflow.from_json(summary.raw)  # metadata only: no content needed
            outcomes.append(classify(handle, None, remote, HistoryLookup.empty(), path=_join(base, handle)))
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
