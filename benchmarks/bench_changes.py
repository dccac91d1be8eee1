"""Benchmark change detection (not a test).

Builds, in a temporary directory, a repository with 2,000 notiflows and 500 commits using
`git fast-import` (plus 2,000 files of unrelated code), then times the range and change computation
exactly as the CLI runs it (`runner.prepare` for a `push` event: notiflows.json, opening the
repository, the range, the path-limited diff, map_changes with its exists-at-head look-ups and the
path-limited `git status`) against a plain `git diff --name-only` on the same range. The git
processes each run starts are counted too.

    python benchmarks/bench_changes.py [--notiflows 2000] [--commits 500] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from notiflows_deploy import gitrepo
from notiflows_deploy.model import RunResult
from notiflows_deploy.runner import SecretSink, prepare
from notiflows_deploy.settings import Settings

ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def handle(i: int) -> str:
    return f"flow-{i:05d}"


def notiflow_json(i: int, version: int) -> bytes:
    data = {"name": f"Flow {i} v{version}", "active": True, "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
         "channel_handle": "transactional-email",
         "template": {"channel_type": "email",
                      "data": {"subject": "Hi", "content_type": "html", "body@": "steps/email_1/body.html"}}},
        {"handle": "end", "type": "end", "position": 2}]}
    return (json.dumps(data, indent=2) + "\n").encode()


def stream(notiflows: int, commits: int, rng: random.Random) -> Iterator[bytes]:
    def blob(path: str, data: bytes) -> bytes:
        return f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"

    def commit(n: int, message: str, body: list[bytes]) -> bytes:
        msg = message.encode()
        head = (f"commit refs/heads/main\nmark :{n}\n"
                f"committer Bench <bench@example.invalid> {1_700_000_000 + n * 60} +0000\n"
                f"data {len(msg)}\n").encode() + msg + b"\n"
        if n > 1:
            head += f"from :{n - 1}\n".encode()
        return head + b"".join(body) + b"\n"

    nf = ".notiflows/notiflows"
    first = [blob("notiflows.json", b'{"notiflowsDir": ".notiflows", "project": "bench"}\n')]
    first += [blob(f"src/module_{i:04d}.py", f"VALUE = {i}\n".encode()) for i in range(notiflows)]  # other code
    for i in range(notiflows):
        first.append(blob(f"{nf}/{handle(i)}/notiflow.json", notiflow_json(i, 0)))
        first.append(blob(f"{nf}/{handle(i)}/steps/email_1/body.html", f"<p>flow {i}</p>\n".encode()))
    yield commit(1, "initial", first)
    for n in range(2, commits + 1):
        body = []
        for i in rng.sample(range(notiflows), rng.randint(1, 4)):
            if rng.random() < 0.5:
                body.append(blob(f"{nf}/{handle(i)}/notiflow.json", notiflow_json(i, n)))
            else:
                body.append(blob(f"{nf}/{handle(i)}/steps/email_1/body.html", f"<p>flow {i} v{n}</p>\n".encode()))
        body.append(blob("README.md", f"commit {n}\n".encode()))  # noise outside the tree
        yield commit(n, f"change {n}", body)


def build(path: Path, notiflows: int, commits: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=ENV)
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE, env=ENV)
    assert proc.stdin is not None
    for chunk in stream(notiflows, commits, random.Random(42)):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("git fast-import failed")
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True, env=ENV)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notiflows", type=int, default=2000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.update({k: v for k, v in ENV.items() if k.startswith("GIT_")})

    with tempfile.TemporaryDirectory(prefix="nfd-bench-") as tmp:
        repo_path = Path(tmp) / "repo"
        start = time.perf_counter()
        build(repo_path, args.notiflows, args.commits)
        print(f"built {args.notiflows} notiflows x {args.commits} commits in {time.perf_counter() - start:.2f} s")

        event = Path(tmp) / "event.json"
        git_calls = [0]
        real_git = gitrepo.GitRepo._git

        def counting_git(self: gitrepo.GitRepo, *args: str, check: bool = True) -> tuple[int, bytes, str]:
            git_calls[0] += 1
            return real_git(self, *args, check=check)

        gitrepo.GitRepo._git = counting_git  # type: ignore[method-assign]

        def ours(before: str, after: str) -> tuple[int, int]:
            """What `notiflows-deploy validate` does before loading anything, for a push event."""
            event.write_text(json.dumps({"ref": "refs/heads/main", "before": before, "after": after}))
            env = {"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": after}
            ctx = prepare(Settings(mode="validate", repo=repo_path, env=env), RunResult(mode="validate"), SecretSink())
            try:
                assert not ctx.everything, "the range must not fall back to everything"
                return len(ctx.changed), len(ctx.removed)
            finally:
                if ctx.repo is not None:
                    ctx.repo.close()

        def plain(before: str, after: str) -> int:
            out = subprocess.run(["git", "diff", "--name-only", before, after], cwd=repo_path, env=ENV,
                                 check=True, capture_output=True).stdout
            return len(out.splitlines())

        def rev(ref: str) -> str:
            return subprocess.run(["git", "rev-parse", ref], cwd=repo_path, env=ENV, check=True,
                                  capture_output=True, text=True).stdout.strip()

        print(f"{'range':<22} {'files':>6} {'notiflows':>9} {'ours (ms)':>10} {'git calls':>9} "
              f"{'git diff (ms)':>14}")
        for label, before in (("HEAD~1..HEAD", "HEAD~1"), ("HEAD~50..HEAD", "HEAD~50"),
                              (f"HEAD~{args.commits - 2}..HEAD", f"HEAD~{args.commits - 2}")):
            b, a = rev(before), rev("HEAD")
            git_calls[0] = 0
            t_ours, counts = timed(lambda b=b, a=a: ours(b, a), args.repeat)  # type: ignore[misc]
            calls = git_calls[0] // args.repeat
            t_plain, files = timed(lambda b=b, a=a: plain(b, a), args.repeat)  # type: ignore[misc]
            changed = counts[0] if isinstance(counts, tuple) else "?"
            print(f"{label:<22} {files!s:>6} {changed!s:>9} {t_ours * 1000:>10.1f} {calls:>9} "
                  f"{t_plain * 1000:>14.1f}")


if __name__ == "__main__":
    main()
