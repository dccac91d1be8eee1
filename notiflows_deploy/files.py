"""Read-only views of a project tree: the working tree, or the same tree at a git commit.

The loader reads through `Tree` only, so one loader serves both. Paths are POSIX and relative to
the tree's root (the directory holding `notiflows.json`). Symlinks are reported, never followed:
the loader decides whether a link stays inside its notiflow directory.
"""

from __future__ import annotations

import os
import stat
from enum import Enum
from pathlib import Path
from typing import Protocol


class EntryKind(Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    MISSING = "missing"


class Tree(Protocol):
    description: str  # "working tree" or "commit 1a2b3c4"

    def kind(self, path: str) -> EntryKind: ...

    def read_bytes(self, path: str) -> bytes: ...

    def readlink(self, path: str) -> str: ...

    def listdir(self, path: str) -> list[str]: ...


class WorkTree:
    """The files on disk under `root`."""

    description = "working tree"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _abs(self, path: str) -> Path:
        return self.root / path if path not in ("", ".") else self.root

    def kind(self, path: str) -> EntryKind:
        try:
            mode = os.lstat(self._abs(path)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return EntryKind.MISSING
        if stat.S_ISLNK(mode):
            return EntryKind.SYMLINK
        if stat.S_ISDIR(mode):
            return EntryKind.DIR
        return EntryKind.FILE

    def read_bytes(self, path: str) -> bytes:
        return self._abs(path).read_bytes()

    def readlink(self, path: str) -> str:
        return os.readlink(self._abs(path))

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._abs(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []
