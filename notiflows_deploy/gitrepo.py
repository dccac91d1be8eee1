"""Git access through GitPython: commit ranges, changed paths and trees at a commit.

Every git process this module starts trusts the work tree explicitly (command-scope
`safe.directory`, passed as GIT_CONFIG_COUNT/KEY/VALUE), so a checkout owned by another user
(the Actions container runs as root on a uid-1001 workspace) works without touching any git
config file. `git` is imported lazily so the CLI starts fast, with GIT_PYTHON_REFRESH=quiet so a
missing git binary becomes our own GitError instead of an ImportError.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notiflows_deploy.changes import PathChange
from notiflows_deploy.errors import GitError
from notiflows_deploy.files import EntryKind
from notiflows_deploy.github.event import (
    KIND_DELETED,
    KIND_NEW_BRANCH,
    KIND_PULL_REQUEST,
    KIND_PUSH,
    RangeRequest,
)

if TYPE_CHECKING:
    import git

FETCH_DEPTH_HINT = (
    "set `fetch-depth: 0` on actions/checkout (or at least `fetch-depth: 2` for push events), "
    "or pass --base/--head with commits that are present"
)
_BRANCH_NAME = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._/-]*")  # fetchable as refs/heads/<name>
SYMLINK_MODE = 0o120000
GITLINK_MODE = 0o160000


# ---------------------------------------------------------------------------------------------
# safe.directory, process-scoped


def safe_directory_env(path: str | os.PathLike[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The GIT_CONFIG_* variables that add `safe.directory=<path>` on top of `environ`'s.

    Command-scope config (git >= 2.35.3 reads `safe.directory` from it) applies only to processes
    that inherit these variables: no config file is written and nothing is trusted globally.
    Existing GIT_CONFIG_COUNT entries are kept; the entry is not repeated if already present.
    """
    value = os.fspath(path)
    try:
        count = int(environ.get("GIT_CONFIG_COUNT", "0") or "0")
    except ValueError:
        count = 0
    for i in range(count):
        if environ.get(f"GIT_CONFIG_KEY_{i}") == "safe.directory" and environ.get(f"GIT_CONFIG_VALUE_{i}") == value:
            return {}
    return {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "safe.directory",
        f"GIT_CONFIG_VALUE_{count}": value,
    }


def mark_safe_directory(path: str | os.PathLike[str], environ: MutableMapping[str, str] | None = None) -> None:
    """Trust the repository at `path` for every git process this process starts from now on.

    For the action entrypoint: call it with the workspace (e.g. /github/workspace) before anything
    runs git. It sets command-scope config in `os.environ` (or `environ`): unlike
    `git config --global --add safe.directory`, it writes nothing to $HOME and disappears with the
    process. The path must be the work tree's top level, as git compares it literally.
    """
    target = os.environ if environ is None else environ
    resolved = str(Path(path).resolve())
    target.update(safe_directory_env(resolved, target))


def _import_git() -> Any:
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    try:
        import git as gitmodule
    except ImportError as exc:  # GitPython itself missing, or an old one failing without git
        raise GitError(f"cannot load GitPython: {exc}", hint="install git and the gitpython package") from None
    if shutil.which("git") is None and not os.environ.get("GIT_PYTHON_GIT_EXECUTABLE"):
        raise GitError("the git executable was not found on PATH", hint="install git (e.g. apt-get install git)")
    return gitmodule


class NotAGitRepository(GitError):
    """The path is not inside a git work tree (the caller may carry on without history)."""


def find_toplevel(start: Path) -> Path:
    """The nearest directory at or above `start` holding `.git` (directory or gitfile).

    Done in Python because git itself refuses to answer in a dubiously-owned repository.
    """
    here = start if start.is_dir() else start.parent
    for directory in (here, *here.parents):
        if (directory / ".git").exists():
            return directory
    raise NotAGitRepository(f"{start} is not inside a git work tree",
                   hint="run inside a git checkout (actions/checkout) or pass --repo")


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ResolvedRange:
    """The commits a run compares. `base` is what the server is expected to hold.

    `everything`: every notiflow counts as changed; a `base`, when there is one, still decides
    whether the server's content is "ours" (CONTRACT section 7). `base` None: nothing earlier is
    known (first commit, first push of the default branch, or no parent in a shallow clone).
    `also_ours`: (commit, description) whose content also counts as ours (a pull request's base
    branch tip, which the server holds once main is deployed, while the diff uses the merge base).
    """

    base: str | None
    head: str
    everything: bool
    notes: list[str] = field(default_factory=list)
    also_ours: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------------------------
# a commit's tree as files.Tree


class GitTree:
    """files.Tree over the tree of one commit; paths are relative to the project directory."""

    def __init__(self, repo: GitRepo, commit: str, project_prefix: str) -> None:
        self._repo = repo
        self.commit = commit
        self._prefix = project_prefix.strip("/")
        self.description = f"commit {commit[:7]}"
        self._root: Any = repo._call(lambda: repo._repo.commit(commit).tree)
        self._cache: dict[str, Any] = {}

    def _full(self, path: str) -> str | None:
        joined = posixpath.normpath(posixpath.join(self._prefix, path.replace("\\", "/").strip("/")))
        if joined == ".":
            return ""
        if joined == ".." or joined.startswith("../") or joined.startswith("/"):
            return None
        return joined

    def _lookup(self, path: str) -> Any:
        full = self._full(path)
        return None if full is None else self._lookup_full(full)

    def _lookup_full(self, full: str) -> Any:
        if not full:
            return self._root
        if full in self._cache:
            return self._cache[full]
        parent_path, _, name = full.rpartition("/")
        parent = self._lookup_full(parent_path)
        obj = None
        if parent is not None and parent.type == "tree":
            try:
                obj = self._repo._call(lambda: parent[name])
            except KeyError:
                obj = None
        self._cache[full] = obj
        return obj

    def kind(self, path: str) -> EntryKind:
        obj = self._lookup(path)
        if obj is None:
            return EntryKind.MISSING
        if obj.type == "tree" or obj.mode == GITLINK_MODE:
            return EntryKind.DIR
        if obj.mode & 0o170000 == SYMLINK_MODE:
            return EntryKind.SYMLINK
        return EntryKind.FILE

    def _file_blob(self, path: str) -> Any:
        """The blob `path` names; symlinks are followed inside the commit, like open() follows them on disk."""
        current = path
        for _ in range(40):
            obj = self._lookup(current)
            if obj is None:
                raise FileNotFoundError(f"{current} (in {self.description})")
            if obj.type != "blob":
                raise IsADirectoryError(f"{current} (in {self.description})")
            if obj.mode & 0o170000 != SYMLINK_MODE:
                return obj
            target = self._read_blob(obj).decode("utf-8", "surrogateescape")
            if target.startswith("/"):
                raise FileNotFoundError(f"{path} links outside the repository (in {self.description})")
            current = posixpath.join(posixpath.dirname(current), target)
        raise OSError(f"{path}: too many levels of symbolic links (in {self.description})")

    def read_bytes(self, path: str) -> bytes:
        return self._read_blob(self._file_blob(path))

    def size(self, path: str) -> int:
        """The file's size from the object header, without reading it (`files.SizedTree`)."""
        obj = self._file_blob(path)
        size: int = self._repo._call(lambda: obj.size)
        return size

    def _read_blob(self, obj: Any) -> bytes:
        data: bytes = self._repo._call(lambda: obj.data_stream.read())
        return data

    def readlink(self, path: str) -> str:
        obj = self._lookup(path)
        if obj is None or obj.type != "blob" or obj.mode & 0o170000 != SYMLINK_MODE:
            raise OSError(f"{path} is not a symbolic link (in {self.description})")
        return self._read_blob(obj).decode("utf-8", "surrogateescape")

    def listdir(self, path: str) -> list[str]:
        obj = self._lookup(path)
        if obj is None or obj.type != "tree":
            return []
        return sorted(self._repo._call(lambda: [item.name for item in obj]))


# ---------------------------------------------------------------------------------------------
# streamed git: a history walk that found enough stops git there (drift's history pass)


def _git_command(toplevel: Path, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment for git in `toplevel`, trusted and literal as GitRepo runs it."""
    env = dict(os.environ)
    env.update(safe_directory_env(toplevel, env))
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LITERAL_PATHSPECS="1")
    executable = os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git"
    return [executable, *args], env


def stream_git(toplevel: Path, args: Sequence[str], *, sep: bytes = b"\n") -> Generator[str, None, None]:
    """The output of `git args` in `toplevel`, one `sep`-terminated token at a time, as git writes it.

    Closing the iterator early stops git (a history walk that found enough ends there). A failing
    git raises GitError with git's own message."""
    argv, env = _git_command(toplevel, args)
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: git's stderr can never block it
        try:
            proc = subprocess.Popen(argv, cwd=toplevel, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errors, bufsize=0)
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}", hint="install git (e.g. apt-get install git)") from None
        assert proc.stdout is not None
        finished = False
        try:
            pending = b""
            while chunk := proc.stdout.read(65536):  # unbuffered: whatever git wrote so far
                *tokens, pending = (pending + chunk).split(sep)
                for token in tokens:
                    yield token.decode("utf-8", "surrogateescape")
            if pending:
                yield pending.decode("utf-8", "surrogateescape")
            finished = True
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            status = proc.wait()
        if status != 0:
            errors.seek(0)
            text = " ".join(errors.read().decode("utf-8", "replace").split())
            raise GitError(f"`git {' '.join(args)}` failed (exit {status}): {text or 'no message'}")


def walk_touches(toplevel: Path, head: str, root: str) -> Generator[tuple[str, set[str]], None, None]:
    """(commit, handles whose directory it touched) for each commit from `head` touching `root`
    (relative to the top level), newest first, in one `git log` (path-limited like `git log -- root`;
    a merge counts for the paths it changed against every parent, as `git log -- dir` shows it)."""
    prefix = root.strip("/") + "/"
    args = ["log", "-z", "--format=%x01%H", "--name-only", "--cc", "--no-renames", "--no-show-signature",
            head, "--", root.strip("/")]
    commit: str | None = None
    handles: set[str] = set()
    for token in stream_git(toplevel, args, sep=b"\0"):
        token = token.lstrip("\n")  # git ends the header line with a newline before the first name
        if token.startswith("\x01"):
            if commit is not None:
                yield commit, handles
            commit, handles = token[1:], set()
        elif token.startswith(prefix):
            handle, slash, _rest = token[len(prefix):].partition("/")
            if slash:  # a file in a notiflow's directory, not one next to them
                handles.add(handle)
    if commit is not None:
        yield commit, handles


def count_commits(toplevel: Path, since: str, head: str) -> int:
    """`git rev-list --count since..head`: every commit after `since` up to head."""
    text = "".join(stream_git(toplevel, ["rev-list", "--count", f"{since}..{head}"])).strip()
    return int(text or "0")


# ---------------------------------------------------------------------------------------------
# the repository


class GitRepo:
    """A git work tree, opened from any path inside it."""

    def __init__(self, path: str | os.PathLike[str], *, deepen_start: int = 16, deepen_attempts: int = 6) -> None:
        gitmodule = _import_git()
        self._gitmodule = gitmodule
        start = Path(path).resolve()
        if not start.exists():
            raise GitError(f"{start} does not exist")
        self.toplevel: Path = find_toplevel(start)
        self.deepen_start = deepen_start
        self.deepen_attempts = deepen_attempts
        try:
            self._repo: git.Repo = gitmodule.Repo(self.toplevel)
        except (gitmodule.InvalidGitRepositoryError, gitmodule.NoSuchPathError) as exc:
            raise NotAGitRepository(f"{self.toplevel} is not a usable git repository ({exc})") from None
        # Applies to every git process of this Repo, including GitPython's persistent cat-file.
        env = safe_directory_env(self.toplevel, os.environ)
        if env:
            self._repo.git.update_environment(**env)
        self._repo.git.update_environment(GIT_TERMINAL_PROMPT="0", GIT_LITERAL_PATHSPECS="1")
        self._shallow: bool | None = None
        self._present: set[str] = set()  # full commit shas known to be present

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> GitRepo:
        """Same as GitRepo(path); raises NotAGitRepository outside a work tree."""
        return cls(path)

    def close(self) -> None:
        self._repo.close()

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running git -------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run a GitPython call, turning its errors into GitError."""
        g = self._gitmodule
        try:
            return fn()
        except g.GitCommandNotFound:
            raise GitError("the git executable was not found", hint="install git") from None
        except g.GitCommandError as exc:
            raise GitError(self._describe(exc)) from None
        except (ValueError, g.BadName, g.BadObject) as exc:
            raise GitError(f"git object lookup failed: {exc}") from None

    @staticmethod
    def _describe(exc: Any) -> str:
        stderr = (exc.stderr or "").strip()
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        # GitPython's stderr is "stderr: 'fatal: ...'"; keep git's own words.
        text = " ".join(lines).removeprefix("stderr:").strip().strip("'").strip()
        cmd = exc.command if isinstance(exc.command, str) else " ".join(str(c) for c in exc.command)
        return f"`{cmd}` failed (exit {exc.status}): {text or 'no message'}"

    def _git(self, *args: str, check: bool = True) -> tuple[int, bytes, str]:
        """Run `git args...` in the top level; (status, stdout bytes, stderr)."""
        g = self._gitmodule
        cmd = [g.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
        try:
            status, out, err = self._repo.git.execute(
                cmd, with_extended_output=True, with_exceptions=check, stdout_as_string=False,
                strip_newline_in_stdout=False,
            )
        except g.GitCommandNotFound:
            raise GitError("the git executable was not found", hint="install git") from None
        except g.GitCommandError as exc:
            raise GitError(self._describe(exc)) from None
        return int(status), bytes(out or b""), str(err or "")

    def _text(self, *args: str) -> str:
        return self._git(*args)[1].decode("utf-8", "surrogateescape").strip()

    # -- facts -------------------------------------------------------------------------------

    def prefix(self, project_dir: str | os.PathLike[str]) -> str:
        """`project_dir` relative to the top level: '' or 'a/b/' (POSIX, trailing slash)."""
        project = Path(project_dir).resolve()
        try:
            rel = project.relative_to(self.toplevel)
        except ValueError:
            raise GitError(f"{project} is outside the git work tree {self.toplevel}") from None
        text = rel.as_posix()
        return "" if text in ("", ".") else text + "/"

    def prefix_of(self, project_dir: str | os.PathLike[str]) -> str:
        """Alias of `prefix`."""
        return self.prefix(project_dir)

    def worktree_matches(self, sha: str, path: str = "") -> bool:
        """True when the files on disk are exactly commit `sha`: HEAD is `sha` and `git status`
        (tracked changes and untracked, non-ignored files; under `path` if given) is empty.
        Then the caller may read the work tree instead of the commit's tree."""
        if self.resolve("HEAD") != sha:
            return False
        return self.is_clean([path] if path.strip("/") else [])

    def is_clean(self, paths: Sequence[str]) -> bool:
        """True when `git status` shows nothing (changed or untracked, non-ignored) under `paths`
        (relative to the top level; empty: the whole work tree). Cost follows the paths given."""
        args = ["status", "--porcelain", "-z", "--untracked-files=normal", "--ignore-submodules=dirty"]
        wanted = [p.rstrip("/") for p in paths if p.strip("/")]
        if wanted:
            args += ["--", *wanted]
        return not self._git(*args)[1].strip(b"\0")

    def head_sha(self) -> str:
        sha = self.resolve("HEAD")
        if sha is None:
            raise GitError("HEAD does not point at a commit (empty repository?)", hint="commit something first")
        return sha

    def resolve(self, ref: str) -> str | None:
        """The commit sha `ref` names, or None when it is unknown or the object is absent."""
        if not ref or ref.startswith("-"):
            return None
        if ref in self._present:
            return ref  # a full sha seen before: commits do not go away during a run
        status, out, _ = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
                                   check=False)
        if status != 0:
            return None
        sha = out.decode().strip() or None
        if sha is not None and sha == ref:
            self._present.add(sha)
        return sha

    def is_ancestor(self, a: str, b: str) -> bool:
        status, _, err = self._git("merge-base", "--is-ancestor", a, b, check=False)
        if status in (0, 1):
            return status == 0
        raise GitError(f"git merge-base --is-ancestor {a} {b} failed: {err.strip()}")

    def merge_base(self, a: str, b: str) -> str | None:
        status, out, err = self._git("merge-base", a, b, check=False)
        if status == 0:
            return out.decode().split()[0] if out.strip() else None
        if status == 1:
            return None  # no common ancestor (unrelated, or hidden beyond a shallow boundary)
        raise GitError(f"git merge-base {a} {b} failed: {err.strip()}")

    def _joined(self, a: str, b: str) -> bool:
        return self.merge_base(a, b) is not None

    def is_shallow(self) -> bool:
        if self._shallow is None:  # reset by every fetch
            self._shallow = self._text("rev-parse", "--is-shallow-repository") == "true"
        return self._shallow

    def shallow_commits(self) -> set[str]:
        path = Path(self._text("rev-parse", "--absolute-git-dir")) / "shallow"
        try:
            return set(path.read_text().split())
        except OSError:
            return set()

    def has_remote(self, name: str = "origin") -> bool:
        return name in self._text("remote").split()

    def symbolic_target(self, ref: str) -> str | None:
        """The ref a symbolic ref points at (refs/remotes/origin/HEAD -> refs/remotes/origin/main), or None."""
        status, out, _ = self._git("symbolic-ref", "--quiet", ref, check=False)
        return (out.decode("utf-8", "surrogateescape").strip() or None) if status == 0 else None

    def first_parent(self, sha: str) -> str | None:
        """The first parent of `sha`, or None for a root commit or a shallow boundary."""
        return self.resolve(f"{sha}^1")

    def parents(self, sha: str) -> list[str]:
        """Parents recorded in the commit object (present even when a shallow clone lacks them)."""
        raw = self._git("cat-file", "commit", sha)[1].decode("utf-8", "surrogateescape")
        header = raw.split("\n\n", 1)[0]
        return [line.split()[1] for line in header.splitlines() if line.startswith("parent ")]

    # -- deepening ---------------------------------------------------------------------------

    def deepen(self, targets: Sequence[str], depth: int, *, remote: str = "origin") -> bool:
        """Fetch `depth` more commits of history behind `targets` (shas or refs) from `remote`.

        Targets already present are deepened from the shallow boundary (--deepen); absent ones
        are fetched to `depth` (--depth). False when the fetch failed (e.g. the commit is gone).
        """
        present = [t for t in targets if self.resolve(t)]
        absent = [t for t in targets if t not in present]
        ok = True
        for flag, group in ((f"--deepen={depth}", present), (f"--depth={depth}", absent)):
            if not group:
                continue
            status, _, _ = self._git("fetch", "--no-tags", "--no-recurse-submodules", "--quiet", flag, remote,
                                     *group, check=False)
            if status != 0 and len(group) > 1:
                # One unfetchable sha (a force-pushed-away `before`) must not block the others.
                for one in group:
                    status1, _, _ = self._git("fetch", "--no-tags", "--no-recurse-submodules", "--quiet", flag,
                                              remote, one, check=False)
                    ok = ok and status1 == 0
            else:
                ok = ok and status == 0
        self._shallow = None
        return ok

    def _can_deepen(self) -> bool:
        return self.is_shallow() and self.has_remote("origin")

    def _deepen_until(self, done: Callable[[], bool], targets: Sequence[str], notes: list[str]) -> bool:
        """Deepen (doubling, bounded) until `done()`; True when it holds."""
        if done():
            return True
        if not self._can_deepen():
            return False
        depth = self.deepen_start
        for _ in range(self.deepen_attempts):
            self.deepen([t for t in targets if t], depth)
            if done():
                notes.append(f"shallow clone: fetched more history from origin (--deepen={depth})")
                return True
            if not self.is_shallow():
                break
            depth *= 2
        return done()

    # -- diff, log, trees --------------------------------------------------------------------

    def empty_tree(self) -> str:
        _, out, _ = self._git("hash-object", "-t", "tree", "/dev/null")
        return out.decode().strip()

    def changed_paths(self, base: str | None, head: str, *, paths: Sequence[str] = ()) -> list[PathChange]:
        """`git diff --name-status -M` of base..head (base None: everything in head is added).

        One git process; cost follows the size of the change. Paths are relative to the top
        level. `paths` limits the diff (literal pathspecs), e.g. to the project directory.
        """
        left = base if base is not None else self.empty_tree()
        args = ["-c", "core.quotePath=false", "diff", "--name-status", "-z", "-M", "--no-relative",
                "--no-ext-diff", "--no-textconv", "--ignore-submodules=none", left, head, "--"]
        args += [p.rstrip("/") for p in paths if p.strip("/")]
        out = self._git(*args)[1].decode("utf-8", "surrogateescape")
        fields = out.split("\0")
        changes: list[PathChange] = []
        i = 0
        while i < len(fields):
            status = fields[i]
            if not status:
                i += 1
                continue
            letter = status[0]
            if letter in ("R", "C"):
                changes.append(PathChange(letter, fields[i + 2], fields[i + 1]))
                i += 3
            else:
                changes.append(PathChange(letter, fields[i + 1]))
                i += 2
        return changes

    def renamed_from(self, base: str, head: str, path: str) -> str | None:
        """The path at `base` that git's rename detection sees become `path` at `head` (relative to the
        top level), or None. One whole-tree `git diff -M`: asked only when `path` is missing at `base`."""
        args = ["-c", "core.quotePath=false", "diff", "--name-status", "-z", "-M", "--diff-filter=R",
                "--no-relative", "--no-ext-diff", "--no-textconv", base, head]
        fields = self._git(*args)[1].decode("utf-8", "surrogateescape").split("\0")
        for i in range(0, len(fields) - 2, 3):
            if fields[i].startswith("R") and fields[i + 2] == path:
                return fields[i + 1]
        return None

    def tree_at(self, commit: str, project_prefix: str = "") -> GitTree:
        return GitTree(self, commit, project_prefix)

    def notiflow_handles(self, commit: str, notiflows_root: str) -> set[str]:
        """Handles with a `<notiflows_root>/<handle>/notiflow.json` at `commit` (root relative to
        the top level). One `git ls-tree`; used when notiflowsDir moved in the range."""
        root = notiflows_root.strip("/")
        if not root:
            return set()
        out = self._git("-c", "core.quotePath=false", "ls-tree", "-r", "--name-only", "-z", commit, "--", root)[1]
        found: set[str] = set()
        for name in out.decode("utf-8", "surrogateescape").split("\0"):
            handle, sep, rest = name.removeprefix(root + "/").partition("/")
            if name.startswith(root + "/") and sep and rest == "notiflow.json":
                found.add(handle)
        return found

    def log_paths(self, path: str, head: str, max_count: int) -> list[str]:
        """Commits (newest first, at most `max_count`) reachable from `head` touching `path`.

        `path` is relative to the top level (a directory or a file).
        """
        out = self._text("log", f"--max-count={max(0, max_count)}", "--format=%H", head, "--", path)
        return out.split()

    def walk_touches(self, head: str, root: str) -> Generator[tuple[str, set[str]], None, None]:
        """See `walk_touches`: one streamed `git log` over `root` (relative to the top level)."""
        return walk_touches(self.toplevel, head, root)

    def count_commits(self, since: str, head: str) -> int:
        return count_commits(self.toplevel, since, head)

    # -- the range ---------------------------------------------------------------------------

    def _default_branch_candidates(self, request: RangeRequest) -> list[str]:
        pushed = request.ref.removeprefix("refs/heads/") if request.ref else None
        names: list[str] = []
        if request.default_branch:
            names += [f"origin/{request.default_branch}", request.default_branch]
        names += ["origin/HEAD", "origin/main", "origin/master", "main", "master"]
        # The pushed branch itself is no base: a first push of `main` would compare main with itself,
        # also through origin/HEAD when it points at it (the payload may lack repository.default_branch).
        skip = {pushed, f"origin/{pushed}"} if pushed else set()
        if pushed and (pushed == request.default_branch
                       or self.symbolic_target("refs/remotes/origin/HEAD") == f"refs/remotes/origin/{pushed}"):
            skip |= {"origin/HEAD"}
        seen: list[str] = []
        for name in names:
            if name not in skip and name not in seen:
                seen.append(name)
        return seen

    def _require_commit(self, ref: str, what: str, notes: list[str]) -> str:
        sha = self.resolve(ref)
        if sha is None:
            self._deepen_until(lambda: self.resolve(ref) is not None, [ref], notes)
            sha = self.resolve(ref)
        if sha is None:
            hint = FETCH_DEPTH_HINT if self.is_shallow() else "check the ref, or fetch it"
            raise GitError(f"{what} {ref!r} is not a commit in this repository", hint=hint)
        return sha

    def _resolve_user_ref(self, ref: str, what: str, notes: list[str]) -> str:
        """A --base/--head ref; a branch that exists only as origin/<ref> (actions/checkout creates
        no local branches) is taken from there, fetched first in a shallow clone."""
        sha = self.resolve(ref)
        if sha is not None:
            return sha
        tracking = None if ref.startswith(("origin/", "refs/")) else f"origin/{ref}"
        if tracking is not None:
            sha = self.resolve(tracking)
            if sha is None and _BRANCH_NAME.fullmatch(ref) and self._can_deepen():
                self._fetch_branch(ref)
                sha = self.resolve(tracking)
            if sha is not None:
                notes.append(f"{what} {ref!r}: there is no local {ref}; using {tracking} ({sha[:12]})")
                return sha
        self._deepen_until(lambda: self.resolve(ref) is not None, [ref], notes)
        sha = self.resolve(ref)
        if sha is None:
            hint = FETCH_DEPTH_HINT if self.is_shallow() else "check the ref (a branch, tag or commit sha), or fetch it"
            raise GitError(f"{what} {ref!r} is not a commit in this repository", hint=hint)
        return sha

    def _fetch_commit(self, sha: str, what: str, notes: list[str]) -> str | None:
        """`sha` if present, else fetched from origin (depth 1 in a shallow clone: only its tree is
        needed); None when it cannot be had."""
        found = self.resolve(sha)
        if found is not None or not self.has_remote("origin"):
            return found
        depth = ["--depth=1"] if self.is_shallow() else []  # never make a full clone shallow
        self._git("fetch", "--no-tags", "--no-recurse-submodules", "--quiet", *depth, "origin", sha, check=False)
        self._shallow = None
        found = self.resolve(sha)
        if found is not None:
            notes.append(f"fetched {what} {sha[:12]} from origin" + (" (--depth=1)" if depth else ""))
        return found

    def _first_parent_fetched(self, head: str, notes: list[str]) -> tuple[str | None, str]:
        """(first parent, "ok"), (None, "root") for a root commit, (None, "hidden") when a shallow
        boundary hides the parent and it cannot be fetched."""
        parent = self.first_parent(head)
        if parent is not None:
            return parent, "ok"
        if not self.parents(head):
            return None, "root"
        self._deepen_until(lambda: self.first_parent(head) is not None, [head], notes)
        parent = self.first_parent(head)
        return (parent, "ok") if parent is not None else (None, "hidden")

    def _parent_or_root(self, head: str, why: str, notes: list[str], missed: str = "") -> tuple[str | None, bool]:
        """(first parent, False), or (None, False) for a root commit, or (None, True) = everything."""
        parent, state = self._first_parent_fetched(head, notes)
        if state == "hidden":
            notes.append(f"{why}; the parent of {head[:12]} is not in this shallow clone, so every notiflow counts")
            return None, True
        if state == "root":
            notes.append(f"{why}; {head[:12]} is the first commit, so everything in it is new")
            return None, False
        notes.append(f"{why}; using the first parent {str(parent)[:12]} as the base{missed}")
        return parent, False

    def resolve_head(self, request: RangeRequest, *, head_ref_override: str | None = None) -> ResolvedRange:
        """Only the head commit, for modes that compare everything (drift): no base, no range notes."""
        notes: list[str] = []
        try:
            head = self._resolve_head(request, head_ref_override, notes)
        except GitError:
            fallback = self._merge_commit_range(request, None, head_ref_override, [])
            if fallback is None:
                raise
            head = fallback.head
        return ResolvedRange(None, head, True, notes)

    def _resolve_head(self, request: RangeRequest, head_ref_override: str | None, notes: list[str]) -> str:
        if head_ref_override:
            return self._resolve_user_ref(head_ref_override, "--head", notes)
        return self._require_commit(request.head or "HEAD", "head commit", notes)

    def resolve_range(
        self,
        request: RangeRequest,
        *,
        base_ref_override: str | None = None,
        head_ref_override: str | None = None,
        all_flag: bool = False,
    ) -> ResolvedRange:
        """The commits to diff, following the event, overridden by --base/--head; with --all every
        notiflow counts and the range's base still decides what is "ours"."""
        notes: list[str] = []
        try:
            head = self._resolve_head(request, head_ref_override, notes)
        except GitError:
            fallback = self._merge_commit_range(request, base_ref_override, head_ref_override, notes)
            if fallback is None:
                raise
            return self._as_everything(fallback, request) if all_flag else fallback
        if not all_flag:
            return self._range(request, base_ref_override, head_ref_override, head, notes)
        try:
            inner = self._range(request, base_ref_override, head_ref_override, head, notes, for_all=True)
        except GitError as exc:
            notes.append(f"--all: every notiflow counts; no base for the conflict rule ({exc.message})")
            return ResolvedRange(None, head, True, notes)
        return self._as_everything(inner, request)

    @staticmethod
    def _as_everything(inner: ResolvedRange, request: RangeRequest) -> ResolvedRange:
        """--all on top of the range the run would otherwise use: its base is kept for "ours"."""
        notes = [n for n in inner.notes if n != request.reason]  # it describes a selection --all replaces
        if inner.base is not None and inner.base != inner.head:
            notes.append(f"--all: every notiflow counts; {inner.base[:12]} stays the base for the conflict rule")
        else:
            notes.append("--all: every notiflow counts")
        return ResolvedRange(inner.base, inner.head, True, notes, inner.also_ours)

    def _range(
        self, request: RangeRequest, base_ref_override: str | None, head_ref_override: str | None, head: str,
        notes: list[str], *, for_all: bool = False,
    ) -> ResolvedRange:
        if base_ref_override is not None:
            chosen = self._resolve_user_ref(base_ref_override, "--base / input base-ref", notes)
            self._note_direct_diff(chosen, head, f"--base {base_ref_override}", notes)
            return ResolvedRange(chosen, head, False, notes)
        if request.everything:
            return self._scheduled_range(request, head, notes)
        if head_ref_override is None:
            if request.reason:
                notes.append(request.reason)
            if request.merge_commit:
                notes.append(f"the checked-out merge commit is {request.merge_commit[:12]}")
        elif request.base is not None:
            notes.append(f"base from the {request.kind} event, head from --head {head_ref_override}")
        if request.kind == KIND_DELETED:
            return ResolvedRange(head, head, False, notes)
        if request.base is None:
            if request.kind == KIND_NEW_BRANCH:
                return self._new_branch_range(request, head, notes)
            if for_all:  # HEAD~1 only as the base for "ours": the --all note says so
                return ResolvedRange(self._first_parent_fetched(head, notes)[0], head, True, notes)
            base, everything = self._parent_or_root(head, "no base given", notes)
            return ResolvedRange(base, head, everything, notes)
        if request.kind == KIND_PUSH:
            return self._push_range(request, request.base, head, notes)
        return self._merge_base_range(request, request.base, head, notes)

    def _note_direct_diff(self, base: str, head: str, what: str, notes: list[str]) -> None:
        """Say so when base is not an ancestor of head: the two trees are compared as they are."""
        if base == head or self.is_shallow() or self.is_ancestor(base, head):
            return  # in a shallow clone ancestry cannot be told; the diff is right either way
        notes.append(f"{what} ({base[:12]}) is not an ancestor of {head[:12]} (a rollback, or diverged history): "
                     "comparing the two commits' trees directly, so every notiflow that differs between them counts")

    def _push_range(self, request: RangeRequest, before: str, head: str, notes: list[str]) -> ResolvedRange:
        """before..after as two trees: the server holds `before`'s content, so what differs between
        the trees is what must be pushed, whether or not `before` is an ancestor (force push)."""
        base = self._fetch_commit(before, "push `before`", notes)
        if base is not None:
            if request.forced:
                self._note_direct_diff(base, head, "push `before`", notes)
            return ResolvedRange(base, head, False, notes)
        if self.is_shallow() and not self.has_remote("origin"):
            raise GitError(f"push `before` {before[:12]} is not in this shallow clone and there is no "
                           "`origin` remote to fetch it from", hint=FETCH_DEPTH_HINT)
        missed = (": notiflows changed or reverted by the push's other commits are not seen "
                  "(deploy with --all, or --base <the commit the server holds>, to compare them)")
        parent, everything = self._parent_or_root(
            head, f"push `before` {before[:12]} is not in the repository and could not be fetched "
            "(force-pushed away?)", notes, missed)
        return ResolvedRange(parent, head, everything, notes)

    def _merge_base_range(self, request: RangeRequest, base_ref: str, head: str, notes: list[str]) -> ResolvedRange:
        """pull_request / merge_group: what the branch adds, i.e. the diff from the merge base."""
        base = self.resolve(base_ref)
        mb = self.merge_base(base, head) if base is not None else None
        if mb is None:
            # A shallow clone may hide the base or the history joining it to head.
            self._deepen_until(
                lambda: (b := self.resolve(base_ref)) is not None and self.merge_base(b, head) is not None,
                [base_ref, head], notes,
            )
            base = self.resolve(base_ref)
            mb = self.merge_base(base, head) if base is not None else None
        if base is None:
            if self.is_shallow() and not self.has_remote("origin"):
                raise GitError(f"base {base_ref[:12]} is not in this shallow clone and there is no "
                               "`origin` remote to fetch it from", hint=FETCH_DEPTH_HINT)
            raise GitError(f"base {base_ref!r} is not a commit in this repository",
                           hint=FETCH_DEPTH_HINT if self.is_shallow() else "check the ref, or fetch it")
        if mb is None:
            if self.is_shallow():
                raise GitError(f"cannot find the history joining base {base[:12]} and head {head[:12]} "
                               "in this shallow clone", hint=FETCH_DEPTH_HINT)
            raise GitError(f"base {base[:12]} and head {head[:12]} share no history",
                           hint="pass --base/--head with commits that share history")
        also: tuple[tuple[str, str], ...] = ()
        if mb != base:
            notes.append(f"diffing from the merge base {mb[:12]}")
        if request.kind == KIND_PULL_REQUEST:
            also = self._base_tips(request, base, mb)
            if also:
                notes.append("the base branch moved on since the merge base: its content at "
                             + " and ".join(sha[:12] for sha, _ in also) + " also counts as ours")
        return ResolvedRange(mb, head, False, notes, also)

    def _base_tips(self, request: RangeRequest, base: str, mb: str) -> tuple[tuple[str, str], ...]:
        """The pull request's base branch tip(s) other than the merge base: pull_request.base.sha, and
        the merge commit's first parent (fresher when the base branch moved; only when present, and only
        for GitHub's test merge commit, whose second parent is the pull request's head)."""
        tips: list[tuple[str, str]] = []
        if base != mb:
            tips.append((base, f"the base branch tip {base[:12]} (pull_request.base.sha)"))
        merge = self.resolve(request.merge_commit) if request.merge_commit else None
        head = self.resolve(request.head) if request.head else None
        if merge is not None and head is not None and self.parents(merge)[1:2] == [head]:
            parent = self.first_parent(merge)
            if parent is not None and parent not in (mb, base):
                tips.append((parent, f"the base branch tip {parent[:12]} (first parent of the merge commit)"))
        return tuple(tips)

    def _scheduled_range(self, request: RangeRequest, head: str, notes: list[str]) -> ResolvedRange:
        """schedule / workflow_dispatch: every notiflow counts; the first parent, when there is one,
        is the base for the conflict rule (the server usually holds it or head)."""
        parent, _ = self._first_parent_fetched(head, notes)
        why = request.reason or "every notiflow counts"
        notes.append(why + (f"; the first parent {parent[:12]} is the base for the conflict rule" if parent else ""))
        return ResolvedRange(parent, head, True, notes)

    def _merge_commit_range(
        self, request: RangeRequest, base_override: str | None, head_override: str | None, notes: list[str],
    ) -> ResolvedRange | None:
        """A pull request whose head commit cannot be fetched: the merge commit against its base side."""
        if request.kind != KIND_PULL_REQUEST or not request.merge_commit or head_override or base_override:
            return None
        merge = self.resolve(request.merge_commit)
        if merge is None or len(self.parents(merge)) < 2:
            return None
        self._deepen_until(lambda: self.first_parent(merge) is not None, [merge], notes)
        parent = self.first_parent(merge)
        if parent is None:
            return None
        notes.append(f"pull request head {str(request.head)[:12]} is not available; using the merge commit "
                     f"{merge[:12]} against its first parent {parent[:12]}")
        return ResolvedRange(parent, merge, False, notes)

    def _fetch_branch(self, name: str) -> None:
        """Shallow clone: fetch origin's `name` into origin/<name> (actions/checkout fetches one ref)."""
        if self.resolve(f"origin/{name}") is None and self._can_deepen():
            self._git("fetch", "--no-tags", "--no-recurse-submodules", "--quiet", f"--depth={self.deepen_start}",
                      "origin", f"+refs/heads/{name}:refs/remotes/origin/{name}", check=False)
            self._shallow = None

    def _new_branch_range(self, request: RangeRequest, head: str, notes: list[str]) -> ResolvedRange:
        pushed = request.ref.removeprefix("refs/heads/") if request.ref else None
        if pushed and pushed == request.default_branch:
            # The default branch itself is new (the repository's first push): all of it is new.
            notes.append(f"first push of the default branch {pushed}: every notiflow counts")
            return ResolvedRange(None, head, True, notes)
        if request.default_branch:
            self._fetch_branch(request.default_branch)
        for name in self._default_branch_candidates(request):
            other = self.resolve(name)
            if other is None:
                continue
            self._deepen_until(partial(self._joined, other, head), [other, head], notes)
            mb = self.merge_base(other, head)
            if mb is not None:
                notes.append(f"new branch: using the merge base {mb[:12]} with the default branch {name}")
                return ResolvedRange(mb, head, False, notes)
        # Nothing to compare with: the branch's commits may all be new, so everything counts.
        parent, _ = self._first_parent_fetched(head, notes)
        rule = f"; the first parent {parent[:12]} is the base for the conflict rule" if parent else ""
        notes.append(f"new branch {pushed or ''} and no default branch to compare it with: every notiflow"
                     f" counts{rule}")
        return ResolvedRange(parent, head, True, notes)
