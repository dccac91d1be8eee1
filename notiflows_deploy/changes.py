"""Map changed paths of a commit range to notiflow handles. Pure: no git, no file system.

A notiflow is defined by `<prefix><notiflowsDir>/notiflows/<handle>/notiflow.json`. Any change under
that directory marks the handle changed; a handle whose notiflow.json existed at the base and is
gone at the head, with nothing else of its directory added or kept by the diff, is removed (a renamed
directory is therefore a removal plus a new notiflow). When the diff shows a file of the directory at
head (notiflow.json renamed to notiflows.json, say), it is a stray: the caller reports it invalid.
A change to the project's notiflows.json means every notiflow counts (notiflowsDir may have moved).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

NOTIFLOW_FILE = "notiflow.json"


@dataclass(frozen=True)
class PathChange:
    """One entry of `git diff --name-status`. Paths are relative to the git top level (POSIX).

    `status` is git's letter (A, M, D, R, C, T, U, X); for R and C `old_path` is the source.
    """

    status: str
    path: str
    old_path: str | None = None


@dataclass
class ChangeSet:
    changed: set[str] = field(default_factory=set)  # notiflows to validate/plan/deploy
    removed: set[str] = field(default_factory=set)  # notiflow.json gone at head
    everything: bool = False  # notiflows.json changed: every notiflow counts
    reasons: dict[str, str] = field(default_factory=dict)  # handle (or the config name) -> why
    # Directories touched that hold no notiflow.json at head and had none at the base (a misnamed
    # notiflow.json, say); the caller reports the ones still present as invalid.
    strays: set[str] = field(default_factory=set)
    everything_reason: str = ""  # why `everything`, for the run's notes (per-handle reasons stay per handle)


def normalise_prefix(prefix: str) -> str:
    """'' for the top level, else 'a/b/' (POSIX, trailing slash)."""
    prefix = prefix.replace("\\", "/").strip("/")
    if prefix in ("", "."):
        return ""
    return posixpath.normpath(prefix) + "/"


def _handle_and_rest(path: str, notiflows_root: str) -> tuple[str, str] | None:
    """('welcome', 'steps/email_1/body.html') for a path inside a notiflow directory, else None."""
    if not path.startswith(notiflows_root):
        return None
    rest = path[len(notiflows_root):]
    handle, sep, inner = rest.partition("/")
    if not handle or not sep or not inner:
        return None  # a file directly in notiflows/, or the directory itself
    return handle, inner


def map_changes(
    changes: Iterable[PathChange],
    *,
    project_prefix: str,
    notiflows_dir: str,
    config_name: str = "notiflows.json",
    exists_at_head: Callable[[str], bool] | None = None,
) -> ChangeSet:
    """The notiflows a list of path changes touches.

    `exists_at_head(handle)` says whether `<handle>/notiflow.json` exists at the head commit. It is
    asked only for handles whose notiflow.json is not itself in the diff (then the diff alone
    cannot tell an extracted-file edit from a stray directory). Without it such handles count as
    changed.
    """
    prefix = normalise_prefix(project_prefix)
    config_path = prefix + config_name
    notiflows_root = prefix + normalise_prefix(notiflows_dir) + "notiflows/"
    result = ChangeSet()
    touched: dict[str, list[str]] = {}  # handle -> notes, in diff order
    json_new: set[str] = set()  # notiflow.json present at head (A/M/T/new side of R, C)
    json_gone: set[str] = set()  # notiflow.json present at base, gone at head (D, old side of R)
    kept: set[str] = set()  # some file of the directory is at head (any new side but a deletion's)

    for change in changes:
        status = change.status[:1].upper()
        sides: list[tuple[str, str]] = [(change.path, "new")]
        if change.old_path is not None and status == "R":
            sides.append((change.old_path, "old"))  # a copy's source is unchanged
        for path, side in sides:
            if path == config_path:
                result.everything = True
                result.everything_reason = f"{config_name} changed ({status}): every notiflow counts"
                result.reasons[config_name] = result.everything_reason
                continue
            found = _handle_and_rest(path, notiflows_root)
            if found is None:
                continue
            handle, inner = found
            touched.setdefault(handle, []).append(inner)
            if side == "new" and status != "D":
                kept.add(handle)
            if inner != NOTIFLOW_FILE:
                continue
            if side == "old" or status == "D":
                json_gone.add(handle)
            else:
                json_new.add(handle)
                if status == "R" and change.old_path is not None:
                    old = _handle_and_rest(change.old_path, notiflows_root)
                    if old is not None and old[0] != handle:
                        result.reasons[handle] = f"new directory (renamed from {old[0]})"

    for handle, inners in touched.items():
        if handle in json_new:
            result.changed.add(handle)
            result.reasons.setdefault(handle, "notiflow.json changed" if NOTIFLOW_FILE in inners
                                      else f"{inners[0]} changed")
        elif handle in json_gone and handle not in kept:
            result.removed.add(handle)
            result.reasons[handle] = "notiflow.json deleted"
        elif exists_at_head is None or exists_at_head(handle):
            result.changed.add(handle)
            more = f" (+{len(inners) - 1} more)" if len(inners) > 1 else ""
            result.reasons[handle] = f"{inners[0]} changed{more}"
        else:
            result.strays.add(handle)
    return result
