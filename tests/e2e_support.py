"""Helpers for the end-to-end tests: real git repositories, the real CLI, the bundled emulator.

`Cli` runs `notiflows_deploy.cli.main(argv, env)` in-process with an explicit environment and reads
back the JSON report; `Proc*` helpers drive `python -m notiflows_deploy` as real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitutil import TestRepo

from notiflows_deploy.cli import main

TOKEN = "nf_at_emulator"
PROJECT = "demo"


@dataclass
class Run:
    code: int
    report: dict[str, Any]

    @property
    def by_handle(self) -> dict[str, dict[str, Any]]:
        return {n["handle"]: n for n in self.report["notiflows"]}

    def status(self, handle: str) -> str:
        return str(self.by_handle[handle]["status"])

    @property
    def statuses(self) -> dict[str, str]:
        return {h: str(n["status"]) for h, n in self.by_handle.items()}


class Cli:
    """The real command line, in-process, against one emulator base URL."""

    def __init__(self, base_url: str, workdir: Path, token: str = TOKEN) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.token = token
        self.runs = 0

    def env(self, **extra: str) -> dict[str, str]:
        return {"NOTIFLOWS_TOKEN": self.token, "NOTIFLOWS_BASE_URL": self.base_url, **extra}

    def __call__(self, mode: str, repo: Path, *args: str, env: Mapping[str, str] | None = None) -> Run:
        self.runs += 1
        report_path = self.workdir / f"report-{self.runs}.json"
        argv = [mode, "--repo", str(repo), "--format", "text", "--report-json", str(report_path), *args]
        code = main(argv, dict(env) if env is not None else self.env())
        report = json.loads(report_path.read_text(encoding="utf-8"))
        assert report["exit_code"] == code
        return Run(code, report)


def make_repo(path: Path, *handles: str, project_dir: str = "") -> TestRepo:
    """A git repo whose notiflows.json names the emulator's project, with `handles` committed."""
    repo = TestRepo(path, project=project_dir)
    repo.config({"notiflowsDir": ".notiflows", "project": PROJECT})
    for handle in handles:
        repo.add_notiflow(handle)
    repo.commit("initial")
    return repo


def set_body(repo: TestRepo, handle: str, body: str) -> None:
    repo.write(repo.nf_path(handle, "steps/email_1/body.html"), body)


def edit_notiflow(repo: TestRepo, handle: str, **changes: Any) -> dict[str, Any]:
    """Rewrite `handle`'s notiflow.json with top-level `changes` (None removes a key)."""
    path = repo.path / repo.nf_path(handle, "notiflow.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


# ---- emulator state / request log ------------------------------------------------------------


def flows(state: Mapping[str, Any], project: str = PROJECT) -> dict[str, Any]:
    found: dict[str, Any] = state["projects"][project]["notiflows"]
    return found


def current(state: Mapping[str, Any], handle: str, project: str = PROJECT) -> dict[str, Any]:
    flow = flows(state, project)[handle]
    (version,) = [v for v in flow["versions"] if v["version_number"] == flow["current"]]
    result: dict[str, Any] = version
    return result


def body_of(state: Mapping[str, Any], handle: str) -> str:
    steps = current(state, handle)["content"]["steps"]
    (email,) = [s for s in steps if s["handle"] == "email_1"]
    return str(email["template"]["data"]["body"])


def api_requests(log: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in log if "/_emulator/" not in str(r["path"])]


def successful_puts(log: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Handle -> number of PUTs the emulator answered 200/201."""
    out: Counter[str] = Counter()
    for r in api_requests(log):
        if r["method"] == "PUT" and r["status"] in (200, 201):
            out[str(r["path"]).rsplit("/", 1)[-1].split("?")[0]] += 1
    return out


# ---- subprocesses -----------------------------------------------------------------------------


def subprocess_env(base_url: str, token: str = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NOTIFLOWS_", "GIT_"))}
    env.update(NOTIFLOWS_TOKEN=token, NOTIFLOWS_BASE_URL=base_url, NOTIFLOWS_DEPLOY_SCHEMA_FETCH="0")
    if "NOTIFLOWS_DEPLOY_CACHE_DIR" in os.environ:
        env["NOTIFLOWS_DEPLOY_CACHE_DIR"] = os.environ["NOTIFLOWS_DEPLOY_CACHE_DIR"]
    return env


class EmulatorProcess:
    """`python -m notiflows_deploy emulator --port 0 ...` in a subprocess; stop() ends it."""

    def __init__(self, data: Path, *, latency_ms: float = 0.0, extra: Sequence[str] = ()) -> None:
        cmd = [sys.executable, "-m", "notiflows_deploy", "emulator", "--port", "0", "--data", str(data),
               "--token", TOKEN, "--project", PROJECT, "--latency-ms", str(latency_ms), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.base_url = line
        self.root_url = line.split("/management/")[0]

    def control(self, method: str, name: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.root_url + "/_emulator/" + name, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
            return json.loads(answer.read())

    def requests(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.control("GET", "requests")["requests"]
        return found

    def state(self) -> dict[str, Any]:
        found: dict[str, Any] = self.control("GET", "state")
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def deploy_process(repo: Path, base_url: str, report: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "notiflows_deploy", "deploy", "--repo", str(repo), "--format", "text",
           "--report-json", str(report), *args]
    return subprocess.Popen(cmd, env=subprocess_env(base_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_until(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
