"""The whole product in one command, no account needed.

Builds a git history from examples/acme-shop in a temporary directory, starts the bundled
emulator, and runs validate, plan and deploy through three commits, a dashboard edit (conflict),
a forced push and a drift report. Each step prints the command and its console output; the last
job summary is printed at the end. Exit status 0 means every step did what it should.

    python examples/demo.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = "nf_at_emulator"
PROJECT = "demo"


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Demo Dev", "-c", "user.email=dev@example.com", "-c", "init.defaultBranch=main"]
    cmd = ["git", *identity, *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "--short", "HEAD")


def control(root_url: str, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        root_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def step(title: str, repo: Path, env: dict[str, str], args: list[str], expect: int) -> None:
    print(f"\n\033[1m== {title}\033[0m\n$ notiflows-deploy {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "notiflows_deploy", *args], cwd=repo, env=env, check=False)
    verdict = "as expected" if proc.returncode == expect else f"UNEXPECTED (wanted {expect})"
    print(f"-> exit {proc.returncode} ({verdict})", flush=True)
    if proc.returncode != expect:
        raise SystemExit(1)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise SystemExit(f"demo: {old!r} not found in {path}")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository and emulator state")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="notiflows-demo-"))
    repo = workdir / "acme-shop"
    shutil.copytree(HERE / "acme-shop", repo)
    git(repo, "init", "-q")
    first = commit(repo, "Add notiflows")

    emulator = subprocess.Popen(
        [sys.executable, "-m", "notiflows_deploy", "emulator", "--port", "0", "--data", str(workdir / "state.json"),
         "--token", TOKEN, "--project", PROJECT],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert emulator.stdout is not None
        base_url = emulator.stdout.readline().strip()
        root_url = base_url.split("/management/")[0]
        print(f"emulator: {base_url} (state in {workdir / 'state.json'})")
        summary = workdir / "summary.md"
        env = {
            **os.environ,
            "NOTIFLOWS_TOKEN": TOKEN,
            "NOTIFLOWS_BASE_URL": base_url,
            "NOTIFLOWS_DEPLOY_SCHEMA_FETCH": "0",  # offline: use the bundled schema
            "APP_URL": "https://app.acme.example",
            "SUPPORT_PHONE": "+1 555 0100",
            "INCIDENT_WEBHOOK_URL": "https://hooks.acme.example/T0KEN-s3cr3t",
        }
        for name in ("GITHUB_ACTIONS", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_STEP_SUMMARY",
                     "GITHUB_OUTPUT"):
            env.pop(name, None)
        out = ["--summary", str(summary)]

        print(f"\nrepo: {repo} (commit {first}: Add notiflows)")
        step("1. validate every notiflow (local checks only)", repo, env, ["validate", "--all"], 0)
        step("2. plan the first deploy", repo, env, ["plan", "--all"], 0)
        step("3. deploy everything and publish", repo, env, ["deploy", "--all", "--publish", *out], 0)

        nf = repo / ".notiflows" / "notiflows"
        edit(nf / "welcome-series" / "notiflow.json", '"Getting started with Acme"', '"Your first week with Acme"')
        edit(nf / "welcome-series" / "steps" / "email_1" / "body.html", "setting up your shop", "launching your shop")
        edit(nf / "weekly-digest" / "notiflow.json", '"duration": 7', '"duration": 6')
        second = commit(repo, "Reword the welcome emails; digest every 6 days")
        print(f"\ncommit {second}: Reword the welcome emails; digest every 6 days")
        step("4. plan the change (only the two notiflows touched by the commit)", repo, env, ["plan"], 0)
        step("5. deploy it", repo, env, ["deploy", *out], 0)
        step("6. deploy again: nothing to do, no false conflict", repo, env, ["deploy", "--all"], 0)

        control(root_url, "/_emulator/dashboard-edit", {"project": PROJECT, "handle": "order-shipped"})
        print("\nsomeone edits order-shipped in the dashboard ...")
        edit(nf / "order-shipped" / "steps" / "sms_1" / "body.txt", "has shipped", "is on its way")
        third = commit(repo, "Friendlier shipping SMS")
        print(f"commit {third}: Friendlier shipping SMS")
        step("7. plan: the dashboard edit is a conflict, with a three-way view", repo, env, ["plan"], 3)
        step("8. deploy refuses to overwrite it (exit 3)", repo, env, ["deploy", *out], 3)
        step("9. deploy --force overwrites it and says so", repo, env, ["deploy", "--force"], 0)

        control(root_url, "/_emulator/dashboard-edit", {"project": PROJECT, "handle": "security-alert"})
        control(root_url, "/_emulator/remote-only", {"project": PROJECT, "handle": "holiday-promo"})
        print("\nthe dashboard changes security-alert and creates holiday-promo ...")
        step("10. scheduled drift report (exit 2: drift found)", repo, env, ["drift", *out], 2)

        print("\n== the job summary of the last run (" + str(summary) + ")\n")
        print(summary.read_text(encoding="utf-8"))
        print("demo: every step behaved as expected")
        return 0
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
