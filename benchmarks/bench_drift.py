"""Benchmark: drift over N notiflows against the emulator with latency and a rate limit.

    .venv/bin/python benchmarks/bench_drift.py [--count 2000] [--latency-ms 50] [--rate 100]
                                               [--concurrency 4 5 8 16]

Builds a real git repository with N notiflows (one commit, plus a few later commits so that some
notiflows are undeployed), seeds the emulator straight through its store (no HTTP), adds a few
dashboard edits and dashboard-only notiflows, then runs drift once per concurrency level and
reports, next to each wall time, the minimum the rate limit allows (requests / rate) and the
minimum the latency allows at that concurrency (requests * latency / concurrency); the larger of
the two binds. Once a 429 has told the rate, the client paces to (limit - 1) per window, 5% slower
still (api/ratelimit.py), so a run that hit the limit cannot beat requests * 1.05 / (limit - 1)
either. A failed request is one the run gave up on (a `failed` notiflow, or an exception); 429s
absorbed by back-off are counted separately. "git log" counts history passes (one for every
notiflow that differs). Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from notiflows_deploy.api.client import ManagementClient
from notiflows_deploy.drift import GitHistory, counts_by_class, run_drift
from notiflows_deploy.emulator import Emulator
from notiflows_deploy.gitrepo import GitRepo
from notiflows_deploy.loader import load_notiflow
from notiflows_deploy.model import Status

TOKEN = "nf_at_bench"
PROJECT = "bench"
ROOT = ".notiflows/notiflows"
ACTOR = {"type": "account_token", "id": "at_bench", "name": "bench"}


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def notiflow_doc(handle: str) -> dict[str, Any]:
    return {
        "name": handle.replace("-", " ").title(),
        "active": True,
        "steps": [
            {"handle": "trigger", "type": "trigger", "position": 0},
            {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
             "channel_handle": "transactional-email",
             "template": {"channel_type": "email",
                          "data": {"subject": f"Hello from {handle}", "content_type": "html",
                                   "body@": "steps/email_1/body.html"}}},
            {"handle": "wait_1", "type": "wait", "position": 2, "settings": {"duration": 1, "duration_unit": "days"}},
            {"handle": "end", "type": "end", "position": 3},
        ],
    }


def write_body(repo: Path, handle: str, text: str) -> None:
    (repo / ROOT / handle / "steps/email_1/body.html").write_text(text)


def build_repo(repo: Path, handles: list[str], undeployed: list[str]) -> tuple[str, str]:
    """(first commit, head): every notiflow at the first commit; `undeployed` ones change twice."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "notiflows.json").write_text(json.dumps({"notiflowsDir": ".notiflows", "project": PROJECT}))
    for handle in handles:
        d = repo / ROOT / handle
        (d / "steps/email_1").mkdir(parents=True)
        (d / "notiflow.json").write_text(json.dumps(notiflow_doc(handle), indent=2) + "\n")
        write_body(repo, handle, f"<p>Hello {{{{ data.name }}}} from {handle}</p>\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    first = git(repo, "rev-parse", "HEAD")
    for n in (2, 3):
        for handle in undeployed:
            write_body(repo, handle, f"<p>{handle} v{n}</p>\n")
        git(repo, "commit", "-q", "-am", f"v{n}")
    return first, git(repo, "rev-parse", "HEAD")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rate", type=int, default=100, help="requests per second (emulator rate limit)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 5, 8, 16])
    args = parser.parse_args(argv)
    logging.getLogger("notiflows_deploy.api").setLevel(logging.ERROR)  # 429 retries are counted, not logged

    handles = [f"flow-{i:05d}" for i in range(args.count)]
    undeployed, edited = handles[:5], handles[5:10]
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp, \
            Emulator(tokens=[TOKEN], projects=[PROJECT]) as emu:
        repo_path = Path(tmp) / "repo"
        t0 = time.perf_counter()
        first, head = build_repo(repo_path, handles, undeployed)
        t_repo = time.perf_counter() - t0

        gitrepo = GitRepo(repo_path)
        t0 = time.perf_counter()
        tree = gitrepo.tree_at(first, "")
        for handle in handles:  # seed: every notiflow as deployed at the first commit
            loaded = load_notiflow(tree, notiflows_root=ROOT, handle=handle, env={})
            assert loaded.payload is not None, loaded.problems
            emu.store.upsert(PROJECT, handle, loaded.payload, ACTOR)
        for handle in edited:
            emu.dashboard_edit(PROJECT, handle, {"template_updates": {"email_1": {"subject": "dashboard"}}})
        for i in range(5):
            emu.create_remote_only(PROJECT, f"dashboard-only-{i}")
        t_seed = time.perf_counter() - t0
        print(f"setup: {args.count} notiflows; git repo {t_repo:.1f} s, emulator seeded in {t_seed:.1f} s "
              f"(5 undeployed, 5 edited in the dashboard, 5 dashboard-only)")
        print(f"emulator: latency {args.latency_ms:g} ms per request, rate limit {args.rate} requests/s "
              "(fixed 1 s window per token; refused requests count too)")
        print()
        header = (f"{'conc':>4} {'wall s':>7} {'requests':>8} {'429s':>5} {'failed':>6} "
                  f"{'min by rate s':>13} {'min by latency s':>16} {'wall/min':>8}  classes")
        print(header)
        exit_code = 0
        for concurrency in args.concurrency:
            emu.set_faults(latency_ms=args.latency_ms, rate_limit=args.rate, rate_window=1.0)
            time.sleep(1.1)  # a fresh rate window for each run
            count_before = emu.request_count
            with ManagementClient(emu.base_url, TOKEN, PROJECT, concurrency=concurrency) as client:
                history = GitHistory(gitrepo, head=head, project_prefix="", notiflows_root=ROOT, env={})
                t0 = time.perf_counter()
                try:
                    outcomes = run_drift(repo_tree=gitrepo.tree_at(head, ""), notiflows_root=ROOT, env={},
                                         client=client, git_history_fn=history, concurrency=concurrency)
                    error = ""
                except Exception as exc:  # a benchmark reports, it does not crash
                    outcomes, error = [], f"{type(exc).__name__}: {exc}"
                wall = time.perf_counter() - t0
            emu.clear_faults()
            made = emu.request_count - count_before
            log = emu.requests[-made:] if made <= 10_000 else []
            statuses = Counter(r["status"] for r in log)
            served = made - statuses[429]
            failed = sum(1 for o in outcomes if o.status is Status.FAILED) + (1 if error else 0)
            bad = sum(n for s, n in statuses.items() if s not in (200, 429))
            min_rate = served / args.rate
            min_latency = served * args.latency_ms / 1000 / concurrency
            floor = max(min_rate, min_latency)
            classes = ", ".join(f"{k} {v}" for k, v in counts_by_class(outcomes).items())
            print(f"{concurrency:>4} {wall:>7.1f} {made:>8} {statuses[429]:>5} {failed + bad:>6} "
                  f"{min_rate:>13.1f} {min_latency:>16.1f} {wall / floor:>8.2f}  {classes}")
            print(f"     history: {history.log_calls} git log calls, {history.loads} revision loads")
            if error:
                print(f"     error: {error}")
            if failed or bad or error:
                exit_code = 1
        gitrepo.close()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
