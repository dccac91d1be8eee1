"""Build real git repositories for tests, with the git CLI.

Each builder runs git with a fixed identity and dates and without the user's global or system
config, so tests behave the same on every machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

_counter = [0]


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.invalid",
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
    )
    if extra:
        env.update(extra)
    return env


def run_git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    _counter[0] += 1
    stamp = f"{1_700_000_000 + _counter[0] * 60} +0000"  # distinct, increasing commit dates
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env({"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}),
        check=check, capture_output=True, text=True,
    )


def notiflow_json(name: str, body_file: str = "steps/email_1/body.html") -> str:
    data = {
        "name": name,
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
             "channel_handle": "transactional-email",
             "template": {"channel_type": "email",
                          "data": {"subject": "Hi", "content_type": "html", "body@": body_file}}},
            {"handle": "end", "type": "end", "position": 2},
        ],
    }
    return json.dumps(data, indent=2) + "\n"


class TestRepo:
    """A repository under `path`; the project (notiflows.json) lives in `path / project`."""

    __test__ = False  # not a pytest class

    def __init__(self, path: Path, *, project: str = "", notiflows_dir: str = ".notiflows",
                 branch: str = "main", init: bool = True) -> None:
        self.path = path
        self.project = project.strip("/")
        self.notiflows_dir = notiflows_dir
        if init:
            path.mkdir(parents=True, exist_ok=True)
            self.git("init", "-q", "-b", branch)

    # -- plumbing ---------------------------------------------------------------------------

    def git(self, *args: str, check: bool = True) -> str:
        return run_git(self.path, *args, check=check).stdout.strip()

    def sha(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", f"{ref}^{{commit}}")

    @property
    def prefix(self) -> str:
        return self.project + "/" if self.project else ""

    def project_path(self, rel: str = "") -> Path:
        return self.path / self.project / rel if self.project else self.path / rel

    def nf_path(self, handle: str, rel: str = "") -> str:
        """Path of a notiflow file relative to the git top level."""
        inner = f"{self.notiflows_dir}/notiflows/{handle}" + (f"/{rel}" if rel else "")
        return self.prefix + inner

    # -- content ----------------------------------------------------------------------------

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, rel: str) -> None:
        self.git("rm", "-r", "-q", "--", rel)

    def symlink(self, rel: str, target: str) -> None:
        link = self.path / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    def config(self, data: Mapping[str, object] | None = None) -> None:
        body = data if data is not None else {"notiflowsDir": self.notiflows_dir, "project": "my-app"}
        self.write(self.prefix + "notiflows.json", json.dumps(body) + "\n")

    def add_notiflow(self, handle: str, name: str | None = None, body: str = "<p>hello</p>\n") -> None:
        self.write(self.nf_path(handle, "notiflow.json"), notiflow_json(name or handle))
        self.write(self.nf_path(handle, "steps/email_1/body.html"), body)

    def commit(self, message: str = "change", *, allow_empty: bool = False) -> str:
        self.git("add", "-A")
        args = ["commit", "-q", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        self.git(*args)
        return self.sha()

    def init_project(self, *handles: str) -> str:
        self.config()
        for handle in handles:
            self.add_notiflow(handle)
        return self.commit("initial")


def clone(source: Path, dest: Path, *args: str) -> TestRepo:
    """`git clone [args] file://source dest` (file:// so --depth works)."""
    run_git(dest.parent, "clone", "-q", *args, f"file://{source}", str(dest))
    return TestRepo(dest, init=False)
