"""Read-only views of a project tree: the working tree, or the same tree at a git commit.

The loader reads through `Tree` only, so one loader serves both. Paths are POSIX and relative to
the tree's root (the directory holding `notiflows.json`). Symlinks are reported, never followed:
the loader decides whether a link stays inside its notiflow directory. Anything that is not a
regular file, a directory or a symlink (a FIFO, socket or device) is `SPECIAL` and never opened:
reading a FIFO would block forever.

A tree that knows a file's size without reading it (the work tree: stat; a commit: the blob
header) also implements `SizedTree`, so an oversized file is refused before it is read.
"""

from __future__ import annotations

import errno
import os
import stat
from enum import Enum
from pathlib import Path
from typing import Protocol


class EntryKind(Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SPECIAL = "special"  # FIFO, socket, character or block device: never read
    MISSING = "missing"


class Tree(Protocol):
    description: str  # "working tree" or "commit 1a2b3c4"

    def kind(self, path: str) -> EntryKind: ...

    def read_bytes(self, path: str) -> bytes: ...

    def readlink(self, path: str) -> str: ...

    def listdir(self, path: str) -> list[str]: ...


class SizedTree(Protocol):
    """A `Tree` that can tell a regular file's size in bytes without reading it."""

    def size(self, path: str) -> int: ...


def size_of(tree: Tree, path: str) -> int | None:
    """The size of the file at `path` when `tree` knows it cheaply, else None (then read and measure)."""
    size = getattr(tree, "size", None)  # SizedTree; cheaper than isinstance() on a runtime protocol
    if not callable(size):
        return None
    try:
        known: int = size(path)
    except OSError:
        return None  # reading it will say what is wrong
    return known


class FileTooLarge(OSError):
    """A file over the caller's limit; `size` is its size in bytes (or at least limit + 1)."""

    def __init__(self, path: str, size: int) -> None:
        super().__init__(errno.EFBIG, "file too large", path)
        self.size = size


class WorkTree:
    """The files on disk under `root`."""

    description = "working tree"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.fspath(root)

    def _abs(self, path: str) -> str:
        # Plain strings: this runs for every file of every notiflow (pathlib costs more than the syscall).
        return os.path.join(self._root, path) if path not in ("", ".") else self._root

    def kind(self, path: str) -> EntryKind:
        try:
            mode = os.lstat(self._abs(path)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return EntryKind.MISSING
        if stat.S_ISLNK(mode):
            return EntryKind.SYMLINK
        if stat.S_ISDIR(mode):
            return EntryKind.DIR
        if stat.S_ISREG(mode):
            return EntryKind.FILE
        return EntryKind.SPECIAL

    def size(self, path: str) -> int:
        return os.stat(self._abs(path)).st_size

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The file's bytes; with `limit`, a file over it raises FileTooLarge and at most `limit` + 1
        bytes are ever read (its size is checked first, and again as it is read in case it grew).

        Opened non-blocking and checked after opening, so a path swapped for a FIFO after `kind`
        looked at it still cannot hang the run.
        """
        fd = os.open(self._abs(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            if limit is None:
                return handle.read()
            if info.st_size > limit:
                raise FileTooLarge(path, info.st_size)
            data = handle.read(info.st_size + 1)  # sized by fstat: no limit-sized buffer per file
            if len(data) > info.st_size:  # it grew since fstat
                data += handle.read(limit + 1 - len(data))
            if len(data) > limit:
                raise FileTooLarge(path, len(data))
            return data

    def readlink(self, path: str) -> str:
        return os.readlink(self._abs(path))

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._abs(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []


def read_capped(tree: Tree, path: str, limit: int) -> bytes:
    """`tree.read_bytes(path)`, except that a file over `limit` bytes raises FileTooLarge: before it is
    read when the tree knows its size (the work tree, a `SizedTree`), else once read."""
    if isinstance(tree, WorkTree):
        return tree.read_bytes(path, limit)
    size = size_of(tree, path)
    if size is not None and size > limit:
        raise FileTooLarge(path, size)
    data = tree.read_bytes(path)
    if len(data) > limit:
        raise FileTooLarge(path, len(data))
    return data
