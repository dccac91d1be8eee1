"""Shared builders for the loader tests: notiflow directories on disk, and an in-memory Tree."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notiflows_deploy.files import EntryKind, WorkTree
from notiflows_deploy.loader import LoadedNotiflow, load_notiflow

ROOT = ".notiflows/notiflows"

# Positions below are asserted literally in the tests: keep this text byte-for-byte.
WELCOME = """{
  "$schema": "https://notiflows.com/schemas/notiflow.json",
  "name": "Welcome to ${APP_NAME}",
  "active": true,
  "steps": [
    { "handle": "trigger", "type": "trigger", "position": 0 },
    {
      "handle": "email_1",
      "type": "channel",
      "position": 1,
      "channel_type": "email",
      "channel_handle": "transactional-email",
      "template": {
        "channel_type": "email",
        "data": {
          "subject": "Welcome, {{ data.first_name }}!",
          "content_type": "html",
          "body@": "steps/email_1/body.html"
        }
      }
    },
    { "handle": "end", "type": "end", "position": 2 }
  ],
  "__meta": { "version": 3, "sha": "a1b2c3", "status": "draft", "note": "${NOT_SUBSTITUTED}" }
}
"""
BODY = "<h1>Hello {{ data.first_name }}</h1>\n<p>From ${APP_NAME}</p>\n"
ENV = {"APP_NAME": "Acme"}


def write(base: Path, rel: str, content: str | bytes) -> Path:
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def make(base: Path, handle: str, notiflow: str | bytes, files: Mapping[str, str | bytes] | None = None) -> Path:
    """Write a notiflow directory under `base`/ROOT; return the directory."""
    directory = base / ROOT / handle
    directory.mkdir(parents=True, exist_ok=True)
    write(directory, "notiflow.json", notiflow)
    for rel, content in (files or {}).items():
        write(directory, rel, content)
    return directory


def load(base: Path, handle: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> LoadedNotiflow:
    return load_notiflow(WorkTree(base), notiflows_root=ROOT, handle=handle, env=env or {}, **kwargs)


def pos(text: str, needle: str) -> tuple[int, int]:
    """1-based line/column of the first `needle` in `text` (an independent cross-check)."""
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def codes(loaded: LoadedNotiflow) -> list[str]:
    return [p.code for p in loaded.problems]


class MemTree:
    """A Tree held in memory: files are bytes, links are ("link", target), directories are implied."""

    description = "memory"

    def __init__(self, entries: Mapping[str, bytes | tuple[str, str]]) -> None:
        self.entries = dict(entries)
        self.dirs = {"", "."}
        for path in self.entries:
            parts = path.split("/")
            for i in range(1, len(parts)):
                self.dirs.add("/".join(parts[:i]))
        self.reads: list[str] = []

    def kind(self, path: str) -> EntryKind:
        entry = self.entries.get(path)
        if isinstance(entry, tuple):
            return EntryKind.SYMLINK
        if entry is not None:
            return EntryKind.FILE
        return EntryKind.DIR if path in self.dirs else EntryKind.MISSING

    def read_bytes(self, path: str) -> bytes:
        entry = self.entries.get(path)
        if not isinstance(entry, bytes):
            raise FileNotFoundError(2, "No such file", path)
        self.reads.append(path)
        return entry

    def readlink(self, path: str) -> str:
        entry = self.entries[path]
        assert isinstance(entry, tuple)
        return entry[1]

    def listdir(self, path: str) -> list[str]:
        prefix = path + "/" if path not in ("", ".") else ""
        every = [*self.entries, *self.dirs]
        names = {p[len(prefix):].split("/")[0] for p in every if p.startswith(prefix) and p != path}
        return sorted(n for n in names if n)
