"""The pipeline: files -> payload -> plan -> actions -> RunResult.

One function per mode. Everything a run learns goes into the RunResult; a failure of one notiflow
is a value there, never an exception that hides the others.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notiflows_deploy.config import CONFIG_NAME, DEFAULT_API_URL, ProjectConfig, load_config
from notiflows_deploy.errors import ConfigError, GitError, NotiflowsDeployError, UsageError
from notiflows_deploy.files import EntryKind, Tree, WorkTree
from notiflows_deploy.model import NotiflowOutcome, Problem, RunResult, Status
from notiflows_deploy.redact import SecretPolicy
from notiflows_deploy.settings import Settings

if TYPE_CHECKING:
    from notiflows_deploy.api.client import ManagementClient
    from notiflows_deploy.api.models import RemoteNotiflow
    from notiflows_deploy.diff import SecretPath
    from notiflows_deploy.drift import Revision
    from notiflows_deploy.gitrepo import GitRepo, ResolvedRange
    from notiflows_deploy.jsonpos import ParsedJson
    from notiflows_deploy.loader import LoadedNotiflow
    from notiflows_deploy.schema.store import SchemaStore
    from notiflows_deploy.secretpaths import Side


class SchemaDispatch:
    """Checks each document against the schema its own `$schema` names (compiled once per URL)."""

    def __init__(self, store: SchemaStore) -> None:
        self.store = store
        self.sources: set[str] = set()

    def check(self, parsed: ParsedJson, *, file: str) -> list[Problem]:
        url = parsed.value.get("$schema") if isinstance(parsed.value, dict) else None
        checker, source = self.store.checker_for(url if isinstance(url, str) else None)
        self.sources.add(source)
        return checker.check(parsed, file=file)


class SecretSink(set[str]):
    """The run's secret values. Adding one reports it at once (to mask it before anything prints).

    `policy` drops values that are public anyway (see `redact.SecretPolicy`); `add_always` is for
    the token, which is a secret whatever it looks like. `learn` takes values read out of the
    server's text (a rotated secret's old value): they are redacted like the others but never
    reported, since whoever edits the server's text would otherwise choose what the job masks.
    """

    def __init__(self, on_new: Callable[[list[str]], object] | None = None,
                 policy: SecretPolicy | None = None) -> None:
        super().__init__()
        self._on_new = on_new
        self._reported: set[str] = set()  # learned values are members without being reported
        self.policy = policy if policy is not None else SecretPolicy()

    def update(self, *others: Iterable[str]) -> None:
        self._take({v for values in others for v in values if v and self.policy.is_secret(v)})

    def add(self, value: str) -> None:
        self.update([value])

    def add_always(self, value: str) -> None:
        self._take({value} if value else set())

    def learn(self, *others: Iterable[str]) -> None:
        """Redact these values too, without reporting them (see the class docstring)."""
        from notiflows_deploy.redact import LEARNED_MIN_LENGTH

        super().update(v for values in others for v in values
                       if len(v.strip()) >= LEARNED_MIN_LENGTH and self.policy.is_secret(v))

    def _take(self, values: set[str]) -> None:
        new = sorted(values - self._reported)
        self._reported.update(new)
        super().update(new)
        if new and self._on_new is not None:
            self._on_new(new)


@dataclass
class Context:
    settings: Settings
    config: ProjectConfig
    repo: GitRepo | None
    prefix: str  # project directory relative to the git toplevel ("" or "sub/")
    head_tree: Tree
    head_sha: str | None
    base_sha: str | None
    everything: bool
    changed: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    checker: SchemaDispatch | None = None
    secrets: SecretSink = field(default_factory=SecretSink)
    base_root: str | None = None  # notiflows root at the base commit when notiflowsDir moved, else None
    also_ours: tuple[tuple[str, str], ...] = ()  # (commit, description): content there also counts as ours

    @property
    def notiflows_root(self) -> str:
        return self.config.notiflows_root

    def display(self, *parts: str) -> str:
        return posixpath.join(self.prefix, *parts) if self.prefix else posixpath.join(*parts)

    def notiflow_path(self, handle: str) -> str:
        return self.display(self.notiflows_root, handle)

    def load(self, tree: Tree, handle: str, *, validate: bool = True,
             notiflows_root: str | None = None) -> LoadedNotiflow:
        """`handle` in `tree` (at `notiflows_root` when another commit keeps notiflows elsewhere); its
        substituted values join the secrets."""
        from notiflows_deploy.loader import LoadedNotiflow, load_notiflow

        try:
            loaded = load_notiflow(
                tree,
                notiflows_root=notiflows_root or self.notiflows_root,
                handle=handle,
                env=self.settings.env,
                checker=self.checker if validate else None,
                display_prefix=self.prefix,
            )
        except Exception as exc:  # a bug in one notiflow's checks must not hide the others
            path = self.notiflow_path(handle)
            file = posixpath.join(path, "notiflow.json")
            problem = Problem(file, 1, 1, "internal-error",
                              f"unexpected error while checking this notiflow ({type(exc).__name__}); "
                              "it was not pushed", hint="please report this as a bug, with the file if you can")
            return LoadedNotiflow(handle=handle, path=path, file=file, payload=None, document=None,
                                  problems=[problem])
        self.secrets.update(loaded.secret_values)
        return loaded


def execute(settings: Settings, secrets: SecretSink | None = None) -> RunResult:
    """Run one mode. Never raises for expected problems: they end up in the result.

    Every secret value the run learns (the token, substituted environment values) goes into
    `secrets` as soon as it is known.
    """
    result = RunResult(mode=settings.mode, fail_on_drift=settings.fail_on_drift)
    secrets = SecretSink() if secrets is None else secrets
    if settings.token:
        secrets.add_always(settings.token)
    checker: SchemaDispatch | None = None
    ctx: Context | None = None
    try:
        ctx = prepare(settings, result, secrets)
        secrets.policy = public_values(ctx)
        checker = ctx.checker
        MODES[settings.mode](ctx, result)
    except ConfigError as exc:
        result.fatal = str(exc)
        result.errors.append(
            Problem(_config_file(settings, exc), exc.line, exc.column, "config", exc.message, hint=exc.hint)
        )
    except NotiflowsDeployError as exc:
        result.fatal = str(exc)
    finally:
        if ctx is not None and ctx.repo is not None:
            ctx.repo.close()  # GitPython keeps cat-file processes per repository
    if checker is not None:
        result.notes.extend(f"schema: {source}" for source in sorted(checker.sources))
        result.notes.extend(checker.store.notes)
    return result


def public_values(ctx: Context) -> SecretPolicy:
    """The run's secret policy: the handles at head (and NOTIFLOWS_PUBLIC_VARS) are public."""
    from notiflows_deploy.loader import list_handles

    return SecretPolicy.from_env(ctx.settings.env, list_handles(ctx.head_tree, ctx.notiflows_root))


def _config_file(settings: Settings, exc: ConfigError) -> str:
    """The config file's path relative to the repository root (annotations need that); "" when the
    problem is not in a file (e.g. no notiflows.json was found)."""
    from notiflows_deploy.config import find_config

    if exc.file is None:
        return ""
    name = exc.file
    try:
        root = find_config(settings.repo).parent
        repo = _open_repo(root)
    except (NotiflowsDeployError, OSError):
        return name
    if repo is None:
        return name
    with repo:
        prefix = repo.prefix_of(root)
    return posixpath.join(prefix, name) if prefix else name


def prepare(settings: Settings, result: RunResult, secrets: SecretSink) -> Context:
    config = load_config(settings.repo, project_flag=settings.project, env=settings.env)
    result.project = config.project
    from notiflows_deploy.schema.store import SchemaStore

    checker = SchemaDispatch(SchemaStore(override=settings.schema))
    repo = _open_repo(config.root)
    _check_notiflows_dir(config)
    work_tree = WorkTree(config.root)
    if repo is None:
        if settings.base or settings.head:
            raise GitError(
                f"--base/--head need a git repository, and {config.root} is not inside one",
                hint="run inside a git checkout, or use --all",
            )
        result.notes.append("not a git repository: every notiflow counts as changed")
        return Context(settings, config, None, "", work_tree, None, None, True, checker=checker, secrets=secrets)

    prefix = repo.prefix_of(config.root)
    resolved = _resolve_range(repo, settings)
    result.notes.extend(resolved.notes)
    result.base, result.head = resolved.base, resolved.head
    # Read the files on disk when they are the head commit (the usual CI checkout); locally this
    # also plans uncommitted edits, which a note makes visible.
    head_tree: Tree = work_tree if repo.resolve("HEAD") == resolved.head else repo.tree_at(resolved.head, prefix)
    ctx = Context(
        settings, config, repo, prefix, head_tree, resolved.head, resolved.base, resolved.everything,
        checker=checker, secrets=secrets, also_ours=resolved.also_ours,
    )
    if settings.mode != "drift":  # drift compares every notiflow by definition: no change set
        scope_changes(ctx, result)
    if head_tree is work_tree:
        _note_uncommitted(ctx, result)
    return ctx


def _resolve_range(repo: GitRepo, settings: Settings) -> ResolvedRange:
    from notiflows_deploy.github.event import range_request_from_env

    request = range_request_from_env(settings.env)
    if settings.mode == "drift":
        return repo.resolve_head(request, head_ref_override=settings.head)
    return repo.resolve_range(
        request, base_ref_override=settings.base, head_ref_override=settings.head, all_flag=settings.all,
    )


def scope_changes(ctx: Context, result: RunResult) -> None:
    """Fill ctx.changed/removed (or set ctx.everything) from the diff base..head.

    The diff is limited to the notiflows root and notiflows.json, so its cost follows the change.
    """
    from notiflows_deploy.changes import map_changes

    repo, base, head = ctx.repo, ctx.base_sha, ctx.head_sha
    if repo is None or head is None or base is None:
        ctx.everything = True  # nothing earlier is known: every notiflow is new
        return
    config, tree = ctx.config, ctx.head_tree
    changes = map_changes(
        repo.changed_paths(base, head, paths=[ctx.display(ctx.notiflows_root), ctx.display(CONFIG_NAME)]),
        project_prefix=ctx.prefix,
        notiflows_dir=config.notiflows_dir,
        exists_at_head=lambda handle: tree.kind(
            posixpath.join(config.notiflows_root, handle, "notiflow.json")
        ) is not EntryKind.MISSING,
    )
    if changes.everything:
        ctx.everything = True
        result.notes.append(changes.everything_reason)
        ctx.base_root = _base_notiflows_root(ctx, repo, base, result)
    if ctx.everything:
        ctx.removed = _removed_for_everything(ctx, repo, base, changes.removed)
        return
    # A touched directory without notiflow.json (a misnamed one, say) is loaded, so it is reported invalid.
    strays = {h for h in changes.strays if tree.kind(posixpath.join(ctx.notiflows_root, h)) is EntryKind.DIR}
    ctx.changed, ctx.removed = set(changes.changed) | strays, set(changes.removed)


def _base_notiflows_root(ctx: Context, repo: GitRepo, base: str, result: RunResult) -> str | None:
    """The notiflows root at `base` when notiflows.json there names another notiflowsDir, else None."""
    root = notiflows_root_at(repo.tree_at(base, ctx.prefix), ctx.notiflows_root, base, result.notes)
    if root == ctx.notiflows_root:
        return None
    result.notes.append(f"notiflowsDir moved in this range: the base commit's notiflows are read from {root}/")
    return root


def notiflows_root_at(tree: Tree, default: str, commit: str, notes: list[str]) -> str:
    """The notiflows root notiflows.json names in `tree` (a commit); `default` when it has none."""
    from notiflows_deploy.config import normalise_notiflows_dir, parse_config

    try:
        text = tree.read_bytes(CONFIG_NAME).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return default  # no (readable) notiflows.json there: the same layout is the best guess
    where = f"{CONFIG_NAME} at {commit[:12]}"
    try:
        notiflows_dir = normalise_notiflows_dir(parse_config(text, file=where).get("notiflowsDir"), file=where)
    except ConfigError as exc:
        notes.append(f"{exc.message}; its notiflows are looked for at the current notiflowsDir")
        return default
    return posixpath.join(notiflows_dir, "notiflows")


def _removed_for_everything(ctx: Context, repo: GitRepo, base: str, from_diff: set[str]) -> set[str]:
    """Notiflows with a notiflow.json at base and no directory at head (they are listed otherwise)."""
    from notiflows_deploy.loader import list_handles

    at_base = from_diff if ctx.base_root is None else repo.notiflow_handles(base, ctx.display(ctx.base_root))
    return set(at_base) - set(list_handles(ctx.head_tree, ctx.notiflows_root))


def _note_uncommitted(ctx: Context, result: RunResult) -> None:
    """git status only over the paths this run reads from disk (cost follows the change)."""
    if ctx.repo is None:
        return
    root = ctx.display(ctx.notiflows_root)
    if ctx.everything or len(ctx.changed) > 200:  # too many pathspecs: the root is one
        paths = [root]
    else:
        paths = [posixpath.join(root, h) for h in sorted(ctx.changed)]
    if paths and not ctx.repo.is_clean([*paths, ctx.display(CONFIG_NAME)]):
        result.notes.append("the working tree has uncommitted changes: notiflows are read from disk")


def _check_notiflows_dir(config: ProjectConfig) -> None:
    """A typo in notiflowsDir must not turn into a green run that checked nothing."""
    where = config.root / config.notiflows_root
    if not where.is_dir():
        raise ConfigError(
            f"{CONFIG_NAME}: notiflowsDir {config.notiflows_dir!r} has no notiflows/ directory "
            f"(looked for {config.notiflows_root}/ next to {CONFIG_NAME})",
            file=CONFIG_NAME,
            hint="fix notiflowsDir, or create the directory with at least one notiflow",
        )


def _open_repo(root: Path) -> GitRepo | None:
    from notiflows_deploy.gitrepo import GitRepo, NotAGitRepository

    try:
        return GitRepo.open(root)
    except NotAGitRepository:
        return None


def handles_in_scope(ctx: Context) -> tuple[list[str], list[str]]:
    """(handles to load at head, handles removed in the range)."""
    from notiflows_deploy.loader import list_handles

    if ctx.everything:
        return list_handles(ctx.head_tree, ctx.notiflows_root), sorted(ctx.removed)
    # notiflow.json gone but the directory still there (misnamed, say): loaded, so reported invalid.
    present = {h for h in ctx.removed
               if ctx.head_tree.kind(posixpath.join(ctx.notiflows_root, h)) is EntryKind.DIR}
    gone = ctx.removed - present
    return sorted((ctx.changed | present) - gone), sorted(gone)


def removed_outcome(
    ctx: Context, handle: str, remote: RemoteNotiflow | None = None, known: bool = False
) -> NotiflowOutcome:
    where = ""
    if known:
        where = " The server still holds it." if remote is not None else " The server does not hold it."
    return NotiflowOutcome(
        handle=handle,
        status=Status.REMOVED,
        path=ctx.notiflow_path(handle),
        remote_sha_before=remote.current_version.sha if remote and remote.current_version else None,
        detail="The directory was deleted in this range; notiflows-deploy never deletes on the server."
        " Archive it in the dashboard if it should go." + where,
    )


# --- validate ---------------------------------------------------------------------------------


def run_validate(ctx: Context, result: RunResult) -> None:
    handles, removed = handles_in_scope(ctx)
    for handle in handles:
        loaded = ctx.load(ctx.head_tree, handle)
        result.notiflows.append(
            NotiflowOutcome(
                handle=loaded.handle,
                status=Status.VALID if loaded.ok else Status.INVALID,
                path=loaded.path,
                errors=loaded.errors,
                warnings=loaded.warnings,
            )
        )
    result.notiflows.extend(removed_outcome(ctx, h) for h in removed)


# --- plan / deploy ----------------------------------------------------------------------------


def open_client(ctx: Context, result: RunResult) -> ManagementClient:
    settings = ctx.settings
    if not settings.token:
        raise UsageError(
            f"{settings.mode} needs a Notiflows account token in NOTIFLOWS_TOKEN",
            hint="create one in the dashboard (Account tokens) and pass it as a secret: "
            "with: token: ${{ secrets.NOTIFLOWS_TOKEN }}",
        )
    if not ctx.config.project:
        raise UsageError(
            "no project: set --project, NOTIFLOWS_PROJECT, or \"project\" in notiflows.json",
            hint='e.g. {"notiflowsDir": ".notiflows", "project": "my-app"}',
        )
    api_url, source = settings.resolved_api_url(DEFAULT_API_URL)
    from notiflows_deploy.api.client import ManagementClient

    try:
        client = ManagementClient(api_url, settings.token, ctx.config.project, concurrency=settings.concurrency,
                                  secrets=ctx.secrets)  # live: error excerpts are redacted before they are cut
    except ValueError as exc:
        raise UsageError(
            f"the Management API URL from {source} is not usable: {exc}",
            hint="use an http(s) URL such as https://api.notiflows.com/management/v1",
        ) from None
    client.whoami()  # one clear auth/project error instead of one per notiflow
    result.notes.append(f"api: {api_url} ({source}), project {ctx.config.project} ({ctx.config.project_source})")
    return client


def bounded_map(fn: Callable[[str], Any], items: Iterable[str], concurrency: int) -> list[Any]:
    """Apply `fn` on a bounded pool; exceptions come back as values, in input order."""

    def safe(item: str) -> Any:
        try:
            return fn(item)
        except NotiflowsDeployError as exc:
            return exc

    items = list(items)
    if len(items) <= 1 or concurrency <= 1:
        return [safe(i) for i in items]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nfd") as pool:
        return list(pool.map(safe, items))


def build_plan(ctx: Context, result: RunResult, client: ManagementClient) -> list[Any]:
    from notiflows_deploy.api.errors import ApiError
    from notiflows_deploy.planner import KnownContent, PlanInput, plan_one
    from notiflows_deploy.secretpaths import secret_view

    handles, removed = handles_in_scope(ctx)
    loaded = {h: ctx.load(ctx.head_tree, h) for h in handles}
    base = base_side(ctx)
    base_tree, base_root = base.tree, base.root
    result.notes.extend(base.notes)
    ours_trees = OursTrees(ctx)
    need_remote = [h for h in handles if loaded[h].ok] + removed
    remotes = dict(zip(need_remote, bounded_map(client.get_notiflow, need_remote, ctx.settings.concurrency),
                       strict=True))
    items: list[Any] = []
    failed: list[NotiflowOutcome] = []
    for handle in handles:
        item = loaded[handle]
        remote = remotes.get(handle)
        if isinstance(remote, ApiError):
            failed.append(api_failure(ctx, handle, remote, "reading the server's notiflow"))
            continue
        base_loaded = None
        if base_tree is not None and item.ok:
            base_loaded = ctx.load(base_tree, handle, validate=False, notiflows_root=base_root)
        base_payload = base_loaded.payload if base_loaded is not None else None
        tips = other_ours(ctx, item, base_payload, remote, ours_trees)
        sides = [s for s in (base_loaded, *(tip for tip, _ in tips)) if s is not None]
        secret_paths: Collection[SecretPath] = item.secret_paths
        if item.ok and (item.substituted_paths or any(s.substituted_paths for s in sides)):
            # Learns the server's (maybe rotated) values of every compared side's variables into the secrets
            # before any diff: a field that no longer uses its variable still shows the old value otherwise.
            secret_paths = secret_view(item, base=base_loaded, remote=remote, secrets=ctx.secrets,
                                       others=[tip for tip, _ in tips]).templates
        items.append(
            PlanInput(
                handle=handle, path=item.path, payload=item.payload, problems=item.problems, meta_sha=item.meta_sha,
                base_payload=base_payload, remote=remote, secret_paths=secret_paths,
                also_ours=tuple(KnownContent(tip.payload, source) for tip, source in tips if tip.payload is not None),
            )
        )
    for handle in removed:
        remote = remotes.get(handle)
        if isinstance(remote, ApiError):
            result.notiflows.append(removed_outcome(ctx, handle))
        else:
            result.notiflows.append(removed_outcome(ctx, handle, remote, known=True))
    result.notiflows.extend(failed)
    plan = [plan_one(i) for i in items]
    explain_stale_conflicts(ctx, plan)
    explain_env_conflicts(ctx, plan, base_tree, base_root)
    if base.missing_note and any(i.action is Status.CONFLICT and i.base_payload is None for i in plan):
        result.notes.append(base.missing_note)
    return plan


@dataclass
class BaseSide:
    """Where the base commit's notiflows are read: its tree at the project's directory there, the notiflows
    root in it (None: the current one), run notes, and a note to add should a conflict lack a base."""

    tree: Tree | None = None
    root: str | None = None
    notes: list[str] = field(default_factory=list)
    missing_note: str = ""


def base_side(ctx: Context) -> BaseSide:
    """The base tree at head's project directory; when notiflows.json is not there at the base, the
    directory it was renamed from (the project moved in the range), else a note naming the cause."""
    repo, base, head = ctx.repo, ctx.base_sha, ctx.head_sha
    if repo is None or base is None:
        return BaseSide()
    tree = repo.tree_at(base, ctx.prefix)
    if tree.kind(CONFIG_NAME) is not EntryKind.MISSING or head is None:
        return BaseSide(tree, ctx.base_root)
    where = ctx.display(CONFIG_NAME)
    old = repo.renamed_from(base, head, where)
    if old is None:
        return BaseSide(tree, ctx.base_root, missing_note=(
            f"{where} does not exist at the base commit {base[:12]} (the project is new there, or moved without git"
            " seeing a rename), so no base content can make the server's content ours. If the server holds"
            " the content from before a move, pass --base <a commit after the move> (one whose notiflows the"
            " server holds), or check the plan and deploy with --force."))
    old_prefix = posixpath.dirname(old)
    old_prefix = f"{old_prefix}/" if old_prefix else ""
    moved = repo.tree_at(base, old_prefix)
    root = notiflows_root_at(moved, ctx.notiflows_root, base, [])
    note = (f"the project moved in this range: {old} at the base commit {base[:12]} is {where} at head; the base"
            f" commit's notiflows are read from {posixpath.join(old_prefix, root)}/")
    return BaseSide(moved, root, [note])


class OursTrees:
    """The trees of ctx.also_ours (a pull request's base branch tip), opened on first use."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._trees: list[tuple[Tree, str, str]] | None = None

    def __call__(self) -> list[tuple[Tree, str, str]]:
        """(tree, notiflows root there, description) per commit."""
        ctx, repo = self.ctx, self.ctx.repo
        if self._trees is None:
            self._trees = []
            for commit, source in ctx.also_ours:
                if repo is None:
                    break
                tree = repo.tree_at(commit, ctx.prefix)
                self._trees.append((tree, notiflows_root_at(tree, ctx.notiflows_root, commit, []), source))
        return self._trees


def other_ours(
    ctx: Context, item: LoadedNotiflow, base_payload: dict[str, Any] | None, remote: RemoteNotiflow | None,
    trees: OursTrees,
) -> list[tuple[LoadedNotiflow, str]]:
    """The handle at ctx.also_ours (with where it was read), read only when the server is not already
    ours or equal."""
    from notiflows_deploy.normalize import content_from_remote, equal_content
    from notiflows_deploy.planner import is_ours

    if not ctx.also_ours or remote is None or item.payload is None or not item.ok:
        return []
    if equal_content(item.payload, content_from_remote(remote)) or is_ours(
            remote, meta_sha=item.meta_sha, base_payload=base_payload):
        return []
    found = []
    for tree, root, source in trees():
        other = ctx.load(tree, item.handle, validate=False, notiflows_root=root)
        if other.payload is not None:
            found.append((other, source))
    return found


def explain_stale_conflicts(ctx: Context, plan: list[Any]) -> None:
    """A conflict whose server content is this repo's own revision (from its git history, at most
    --history-depth commits touching the notiflow) is ours after all: it becomes would-update, from that
    revision (`planner.adopt_revision`). An earlier deploy failed, or its pending run was dropped for a
    newer one; only content the repo never had stays a conflict. Only conflicts pay for the search,
    one history pass serving them all.
    """
    from notiflows_deploy.drift import GitHistory
    from notiflows_deploy.normalize import content_from_remote, equal_content
    from notiflows_deploy.planner import adopt_revision, mask_more

    conflicts = [i for i in plan if i.action is Status.CONFLICT and i.remote is not None and i.payload is not None]
    if not conflicts or ctx.repo is None or ctx.head_sha is None:
        return
    history = GitHistory(
        ctx.repo, head=ctx.head_sha, project_prefix=ctx.prefix, notiflows_root=ctx.notiflows_root,
        env=ctx.settings.env, display_prefix=ctx.prefix, bound=ctx.settings.history_depth,
        shallow=ctx.repo.is_shallow(), secrets=ctx.secrets,
    )
    history.want(i.handle for i in conflicts)  # one history pass serves every conflict
    for item in conflicts:
        server = content_from_remote(item.remote)
        searched: list[Revision] = []
        for revision in history(item.handle):
            searched.append(revision)
            if revision.payload is not None and equal_content(revision.payload, server):
                # The history loaded it with the run's secrets: its values are masked before any view shows it.
                item.secret_paths = with_side_secrets(ctx, item.secret_paths, [revision], item.payload, server)
                adopt_revision(item, revision.payload, commit=revision.commit, behind=revision.behind)
                break
        else:  # still a conflict: a field an older revision filled from a variable may show its value
            merged = with_side_secrets(ctx, item.secret_paths, searched, item.payload, server)
            if merged is not item.secret_paths:
                mask_more(item, merged)


@dataclass(frozen=True)
class _PlannedSide:
    """Head as a plan item knows it (`secretpaths.Side`): its payload and the secret locations so far."""

    payload: dict[str, Any] | None
    secret_templates: Mapping[SecretPath, tuple[str, ...]]


def with_side_secrets(ctx: Context, secret_paths: Collection[SecretPath], sides: Iterable[Side],
                      head_payload: dict[str, Any], server: dict[str, Any]) -> Collection[SecretPath]:
    """`secret_paths` plus the secret locations of other sides (`secretpaths.candidate_templates`), the
    values the server holds there learned into the secrets: a revision adopted for its diff, or any
    searched, may fill fields head does not."""
    from notiflows_deploy.secretpaths import candidate_templates, old_values

    others = [side for side in sides if side.secret_templates]
    if not others:
        return secret_paths
    known = ({k: tuple(v) for k, v in secret_paths.items()} if isinstance(secret_paths, Mapping)
             else dict.fromkeys(secret_paths, ()))
    merged = candidate_templates(_PlannedSide(head_payload, known), others=others)
    ctx.secrets.learn(old_values(merged, server)[0])
    return merged


def explain_env_conflicts(ctx: Context, plan: list[Any], base_tree: Tree | None, base_root: str | None) -> None:
    """Say so when a conflict is only environment values: the server equals the base commit's content as
    written except in strings holding `${NAME}`, where the server's text fits (a rotated secret, a renamed
    variable). Not overwritten: a dashboard edit of such a field looks the same."""
    from notiflows_deploy.loader import load_notiflow
    from notiflows_deploy.normalize import content_from_remote, variables_only_difference
    from notiflows_deploy.planner import env_conflict

    if base_tree is None:
        return
    env = ctx.settings.env
    for item in plan:
        if item.action is not Status.CONFLICT or item.remote is None:
            continue
        raw = load_notiflow(base_tree, notiflows_root=base_root or ctx.notiflows_root, handle=item.handle, env=env,
                            display_prefix=ctx.prefix, substitute=False).payload
        names = variables_only_difference(raw, content_from_remote(item.remote), env) if raw is not None else None
        if names:
            env_conflict(item, names, unset=[n for n in names if n not in env])


def api_failure(ctx: Context, handle: str, exc: NotiflowsDeployError, doing: str) -> NotiflowOutcome:
    return NotiflowOutcome(
        handle=handle, status=Status.FAILED, path=ctx.notiflow_path(handle), detail=f"Failed while {doing}: {exc}"
    )


def run_plan(ctx: Context, result: RunResult) -> None:
    from notiflows_deploy.deployer import outcome_from_plan

    with open_client(ctx, result) as client:
        items = build_plan(ctx, result, client)
    result.notiflows[:0] = [outcome_from_plan(i, secrets=ctx.secrets) for i in items]
    result.notiflows.sort(key=lambda n: n.handle)


def run_deploy(ctx: Context, result: RunResult) -> None:
    from notiflows_deploy.deployer import deploy

    settings = ctx.settings
    with open_client(ctx, result) as client:
        items = build_plan(ctx, result, client)
        outcomes = deploy(
            items, client, force=settings.force, publish=settings.publish,
            concurrency=settings.concurrency, secrets=ctx.secrets,
        )
    result.notiflows[:0] = outcomes
    result.notiflows.sort(key=lambda n: n.handle)


# --- drift ------------------------------------------------------------------------------------


def run_drift(ctx: Context, result: RunResult) -> None:
    from notiflows_deploy.drift import run_drift as drift

    repo = ctx.repo
    with open_client(ctx, result) as client:
        outcomes = drift(
            repo_tree=ctx.head_tree,
            notiflows_root=ctx.notiflows_root,
            display_prefix=ctx.prefix,
            env=ctx.settings.env,
            client=client,
            repo=repo,
            head=ctx.head_sha,
            concurrency=ctx.settings.concurrency,
            checker=ctx.checker,
            history_depth=ctx.settings.history_depth,
            secrets=ctx.secrets,
            notes=result.notes,  # shallow-clone history and unpublished drafts are run-level facts
            failures=result.failures,  # a failed listing: exit 5, every repo notiflow still compared
        )
    result.notiflows.extend(outcomes)


MODES: dict[str, Callable[[Context, RunResult], None]] = {
    "validate": run_validate,
    "plan": run_plan,
    "deploy": run_deploy,
    "drift": run_drift,
}
