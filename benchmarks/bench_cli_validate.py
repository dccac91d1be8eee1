"""Benchmark (not a test): `notiflows-deploy validate --all --format json` over 1,000 notiflows.

    python benchmarks/bench_cli_validate.py [--count 1000] [--invalid-every 20] [--seed 1] [--repeat 3] [--keep]

Generates a git repository of realistic notiflows (channel, wait, digest, throttle and condition
steps with branches; most channel bodies extracted to files, some substituting ${APP_NAME}), then
times the whole program: as a subprocess (`python -m notiflows_deploy`, start-up included) and
in-process (`cli.main`). Prints notiflows per second and how many times the schema validator was
compiled in the in-process run (SchemaStore.compile_count; must be 1). Offline: no schema download.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_validate import break_it, notiflow  # noqa: E402 - the same generator as the schema benchmark

from notiflows_deploy import cli  # noqa: E402
from notiflows_deploy.schema import store as schema_store  # noqa: E402

ENV = {"APP_NAME": "Acme", "NOTIFLOWS_DEPLOY_SCHEMA_FETCH": "0"}
BODIES = {
    "html": "<h1>Hello {{ recipient.name }}</h1>\n<p>Thanks for using ${APP_NAME}.</p>\n<p>{{ data.message }}</p>\n",
    "txt": "Hi {{ recipient.name }}: {{ data.message }} - ${APP_NAME}\n",
    "md": "**{{ data.title }}**\n\n{{ data.message }}\n",
    "json": '{"event": "{{ data.event }}", "recipient": "{{ recipient.id }}"}\n',
}


def generate(root: Path, count: int, invalid_every: int, seed: int) -> tuple[int, int]:
    """Write notiflows.json and `count` notiflows under root; return (files written, invalid planted)."""
    rng = random.Random(seed)
    (root / "notiflows.json").write_text(json.dumps({"notiflowsDir": ".notiflows", "project": "bench"}) + "\n")
    files = 1
    planted = 0
    for n in range(count):
        doc: dict[str, Any] = notiflow(rng, n)
        if invalid_every and n % invalid_every == invalid_every - 1:
            break_it(rng, doc)
            planted += 1
        directory = root / ".notiflows" / "notiflows" / f"notiflow-{n:04d}"
        directory.mkdir(parents=True)
        for step in doc.get("steps", doc.get("step", [])):
            data = step.get("template", {}).get("data", {})
            pointer = data.get("body@")
            if pointer:
                target = directory / pointer
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(BODIES[pointer.rsplit(".", 1)[1]], encoding="utf-8")
                files += 1
        (directory / "notiflow.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        files += 1
    git = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], cwd=root, check=True)
    return files, planted


def summarise(report: dict[str, Any]) -> str:
    counts = report.get("counts", {})
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def run_subprocess(root: Path) -> tuple[float, dict[str, Any], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "NOTIFLOWS_"))}
    env.update(ENV)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "notiflows_deploy", "validate", "--all", "--format", "json",
                           "--repo", str(root)], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if "Traceback" in proc.stderr or not proc.stdout.strip():
        raise SystemExit(f"subprocess failed (exit {proc.returncode}):\n{proc.stderr}")
    return elapsed, json.loads(proc.stdout), proc.returncode


def run_in_process(root: Path) -> tuple[float, dict[str, Any], int, list[int]]:
    """One cli.main run; also the compile count of every SchemaStore created during it."""
    stores: list[schema_store.SchemaStore] = []
    original_init = schema_store.SchemaStore.__init__

    def recording_init(self: schema_store.SchemaStore, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        stores.append(self)

    schema_store.SchemaStore.__init__ = recording_init  # type: ignore[method-assign]
    out = io.StringIO()
    try:
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = cli.main(["validate", "--all", "--format", "json", "--repo", str(root)], dict(ENV))
        elapsed = time.perf_counter() - started
    finally:
        schema_store.SchemaStore.__init__ = original_init  # type: ignore[method-assign]
    return elapsed, json.loads(out.getvalue()), code, [s.compile_count for s in stores]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--invalid-every", type=int, default=20, help="break every Nth notiflow (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated repository")
    args = parser.parse_args()
    os.environ.update(ENV)  # in-process: the schema store reads these from os.environ
    os.environ.setdefault("NOTIFLOWS_DEPLOY_CACHE_DIR", tempfile.mkdtemp(prefix="nfd-bench-cache-"))

    workdir = Path(tempfile.mkdtemp(prefix="nfd-bench-cli-"))
    try:
        started = time.perf_counter()
        files, planted = generate(workdir, args.count, args.invalid_every, args.seed)
        print(f"generated:          {args.count} notiflows, {files} files, {planted} broken on purpose "
              f"({time.perf_counter() - started:.1f} s) in {workdir}")

        sub_times = []
        for _ in range(args.repeat):
            elapsed, report, code = run_subprocess(workdir)
            sub_times.append(elapsed)
        ok = len(report["notiflows"]) == args.count and report["counts"].get("invalid", 0) == planted
        print(f"subprocess:         exit {code}, {summarise(report)}{'' if ok else '  <-- UNEXPECTED'}")
        best = min(sub_times)
        print(f"  wall time:        best {best:.2f} s, median {statistics.median(sub_times):.2f} s "
              f"over {args.repeat} runs (start-up and JSON output included)")
        print(f"  notiflows/second: {args.count / best:,.0f}")

        in_times, compiles = [], []
        for _ in range(args.repeat):
            elapsed, report, code, counts = run_in_process(workdir)
            in_times.append(elapsed)
            compiles.append(counts)
        ok = ok and len(report["notiflows"]) == args.count and report["counts"].get("invalid", 0) == planted
        best = min(in_times)
        print(f"in-process:         exit {code}, {summarise(report)}")
        print(f"  wall time:        best {best:.2f} s, median {statistics.median(in_times):.2f} s")
        print(f"  notiflows/second: {args.count / best:,.0f}")
        once = all(c == [1] for c in compiles)
        print(f"schema compiled:    {compiles[-1]} (per SchemaStore, per run){'' if once else '  <-- NOT ONCE'}")
        print(f"schema notes:       {[n for n in report['notes'] if n.startswith('schema:')]}")
        return 0 if ok and once else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
