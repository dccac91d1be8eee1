"""Benchmark: `deploy` of the changed notiflows of one commit, at several concurrency levels.

    .venv/bin/python benchmarks/bench_deploy.py [--count 2000] [--changed 200] [--latency-ms 50]
                                                    [--concurrency 1 4 8]

Builds a real git repository with N notiflows (commit 1) and a second commit changing M of them.
For each concurrency level a fresh emulator subprocess is started, seeded with commit 1 by
`deploy --all` at latency 0, then given the latency (POST /_emulator/faults) and the deploy of
commit 2 (the default HEAD~1..HEAD range) is timed as a real subprocess, start-up included.
Requests are counted by the emulator (seeding excluded). Next to each wall time: the floor the
latency allows at that concurrency (requests * latency / concurrency). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

TOKEN = "nf_at_emulator"
PROJECT = "demo"
ROOT = ".notiflows/notiflows"


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)


def notiflow_text(handle: str) -> str:
    return json.dumps({
        "name": handle.replace("-", " ").title(),
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
             "channel_handle": "transactional-email",
             "template": {"channel_type": "email",
                          "data": {"subject": f"Hello from {handle}", "content_type": "html",
                                   "body@": "steps/email_1/body.html"}}},
            {"handle": "end", "type": "end", "position": 2},
        ],
    }, indent=2) + "\n"


def build_repo(path: Path, count: int, changed: int) -> list[str]:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "notiflows.json").write_text(json.dumps({"notiflowsDir": ".notiflows", "project": PROJECT}) + "\n")
    handles = [f"flow-{i:05d}" for i in range(count)]
    for handle in handles:
        directory = path / ROOT / handle
        (directory / "steps" / "email_1").mkdir(parents=True)
        (directory / "notiflow.json").write_text(notiflow_text(handle))
        (directory / "steps" / "email_1" / "body.html").write_text(f"<p>{handle}</p>\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "notiflows")
    return handles


def change_some(path: Path, handles: list[str], changed: int) -> None:
    step = max(1, len(handles) // changed)
    for handle in handles[::step][:changed]:
        (path / ROOT / handle / "steps" / "email_1" / "body.html").write_text(f"<p>{handle}, reworded</p>\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "reword some")


class EmulatorProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notiflows_deploy", "emulator", "--port", "0", "--token", TOKEN,
             "--project", PROJECT],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise SystemExit(f"emulator did not start: {self.base_url!r}")
        self.root_url = self.base_url.split("/management/")[0]

    def control(self, method: str, name: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.root_url + "/_emulator/" + name, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:  # loopback only
            return json.loads(answer.read())

    def request_count(self) -> int:
        return int(self.control("GET", "requests")["request_count"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def deploy(repo: Path, base_url: str, report: Path, *args: str) -> tuple[int, float, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NOTIFLOWS_"))}
    env.update(NOTIFLOWS_TOKEN=TOKEN, NOTIFLOWS_BASE_URL=base_url, NOTIFLOWS_DEPLOY_SCHEMA_FETCH="0")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "notiflows_deploy", "deploy", "--repo", str(repo), "--format", "text",
         "--report-json", str(report), *args],
        env=env, capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - started
    if not report.exists():
        raise SystemExit(f"deploy wrote no report (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.returncode, elapsed, json.loads(report.read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        started = time.perf_counter()
        handles = build_repo(repo, args.count, args.changed)
        first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                               check=True).stdout.strip()
        change_some(repo, handles, args.changed)
        print(f"repo: {args.count} notiflows, {args.changed} changed in the second commit "
              f"(built in {time.perf_counter() - started:.1f} s)", flush=True)

        rows = []
        for n, concurrency in enumerate(args.concurrency):
            emulator = EmulatorProcess()
            try:
                code, seed_time, seed = deploy(repo, emulator.base_url, work / f"seed-{n}.json",
                                               "--all", "--head", first, "--concurrency", "8")
                assert code == 0, seed["result"]
                emulator.control("POST", "faults", {"latency_ms": args.latency_ms})
                before = emulator.request_count()
                code, wall, report = deploy(repo, emulator.base_url, work / f"run-{n}.json",
                                            "--concurrency", str(concurrency))
                requests = emulator.request_count() - before
            finally:
                emulator.stop()
            statuses = Counter(entry["status"] for entry in report["notiflows"])
            floor = requests * args.latency_ms / 1000 / concurrency
            rows.append((concurrency, wall, requests, floor, code, dict(statuses), seed_time))
            print(f"  concurrency {concurrency}: {wall:.2f} s, {requests} requests, exit {code}, "
                  f"{dict(statuses)} (seeding {args.count} at latency 0 took {seed_time:.1f} s)", flush=True)

        print(f"\ndeploy of {args.changed} changed notiflows (of {args.count}), emulator latency "
              f"{args.latency_ms:g} ms, wall time includes process start-up:\n")
        print(f"{'concurrency':>11}  {'wall time':>10}  {'requests':>8}  {'latency floor':>13}  {'exit':>4}  statuses")
        for concurrency, wall, requests, floor, code, counted, _ in rows:
            print(f"{concurrency:>11}  {wall:>8.2f} s  {requests:>8}  {floor:>11.2f} s  {code:>4}  {counted}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
