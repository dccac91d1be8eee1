"""Benchmark (not a test): check 1,000 generated notiflows with one SchemaStore.

    python benchmarks/bench_validate.py [--count 1000] [--invalid-every 20] [--seed 1]

Prints notiflows per second (parse + schema + format rules) and how many times the validator was
compiled (must be 1). Runs offline: schema downloads are disabled.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notiflows_deploy.jsonpos import parse_json
from notiflows_deploy.schema.store import SchemaStore

CHANNELS: dict[str, tuple[str, dict[str, Any]]] = {
    "email": ("html", {"subject": "Hi {{ recipient.name }}", "content_type": "html"}),
    "sms": ("txt", {"content_type": "plaintext"}),
    "in_app": ("md", {"content_type": "markdown", "action_url": "https://app.example.com"}),
    "chat": ("md", {"content_type": "markdown"}),
    "web_push": ("txt", {"title": "Update", "content_type": "plaintext"}),
    "mobile_push": ("txt", {"title": "Update", "content_type": "plaintext", "badge_count": 1, "priority": "high"}),
    "webhook": ("json", {"content_type": "json", "url": "https://hooks.example.com", "method": "POST"}),
}


def channel_step(rng: random.Random, handle: str, position: int) -> dict[str, Any]:
    kind = rng.choice(list(CHANNELS))
    ext, data = CHANNELS[kind]
    data = dict(data)
    if rng.random() < 0.7:
        data["body@"] = f"steps/{handle}/body.{ext}"
    else:
        data["body"] = "Hello {{ recipient.name }}, {{ data.message }}"
    step: dict[str, Any] = {"handle": handle, "type": "channel", "position": position, "channel_type": kind,
                            "channel_handle": f"{kind.replace('_', '-')}-main",
                            "template": {"channel_type": kind, "data": data}}
    if rng.random() < 0.2:
        step["conditions"] = [{"operator": "and", "conditions": [
            {"property": "recipient.plan", "operator": "equal_to", "value": "pro"},
            {"property": "data.total", "operator": "greater_than", "value": "100"}]}]
    return step


def timed_step(rng: random.Random, kind: str, handle: str, position: int) -> dict[str, Any]:
    settings: dict[str, Any] = {"duration": rng.randint(1, 48),
                                "duration_unit": rng.choice(["seconds", "minutes", "hours", "days"])}
    if kind == "digest":
        settings["digest_key"] = "data.thread_id"
    if kind == "throttle":
        settings["throttle_key"] = "data.project_id"
    return {"handle": handle, "type": kind, "position": position, "settings": settings}


def notiflow(rng: random.Random, n: int) -> dict[str, Any]:
    counter: dict[str, int] = {}

    def handle(prefix: str) -> str:
        counter[prefix] = counter.get(prefix, 0) + 1
        return f"{prefix}_{counter[prefix]}"

    steps: list[dict[str, Any]] = [{"handle": "trigger", "type": "trigger", "position": 0}]
    root = 1
    for _ in range(rng.randint(2, 8)):
        roll = rng.random()
        if roll < 0.55:
            steps.append(channel_step(rng, handle("step"), root))
        elif roll < 0.8:
            kind = rng.choice(["wait", "digest", "throttle"])
            steps.append(timed_step(rng, kind, handle(kind), root))
        else:
            cond = handle("condition")
            branches = [f"branch_{i}" for i in range(rng.randint(2, 4))]
            steps.append({"handle": cond, "type": "condition", "position": root, "settings": {"branches": [
                {"handle": b, "name": b.title(), "finish": False,
                 "conditions": [{"operator": "or", "conditions": [
                     {"property": "data.segment", "operator": "equal_to", "value": b}]}]} for b in branches]}})
            for b in branches:
                for pos in range(rng.randint(0, 3)):
                    child = channel_step(rng, handle("step"), pos)
                    child.update(parent_step_handle=cond, branch_handle=b)
                    steps.append(child)
        root += 1
    steps.append({"handle": "end", "type": "end", "position": root})
    return {"$schema": "https://notiflows.com/schemas/notiflow.json", "name": f"Notiflow {n}", "active": True,
            "include_in_preferences": rng.random() < 0.5, "steps": steps,
            "__meta": {"version": rng.randint(1, 9), "published_version": 1, "status": "draft",
                       "has_unpublished_changes": True, "sha": f"{n:040x}"}}


def break_it(rng: random.Random, doc: dict[str, Any]) -> None:
    """One typical mistake: a quoted position, a misspelt type, a duplicate handle or a misspelt key."""
    step = rng.choice(doc["steps"][1:-1])
    mistake = rng.randrange(4)
    if mistake == 0:
        step["position"] = "1"
    elif mistake == 1:
        step["type"] = "chanel"
    elif mistake == 2:
        step["handle"] = "trigger"
    else:
        doc["step"] = doc.pop("steps")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--invalid-every", type=int, default=20, help="break every Nth notiflow (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    texts = []
    for n in range(args.count):
        doc = notiflow(rng, n)
        if args.invalid_every and n % args.invalid_every == args.invalid_every - 1:
            break_it(rng, doc)
        texts.append(json.dumps(doc, indent=2))
    size = sum(len(t) for t in texts)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["NOTIFLOWS_DEPLOY_SCHEMA_FETCH"] = "0"
        store = SchemaStore(cache_dir=Path(cache), fetch=False)
        started, cpu = time.perf_counter(), time.process_time()
        problems = invalid = 0
        for i, text in enumerate(texts):
            parsed = parse_json(text)
            checker, source = store.for_document(parsed.value)
            found = checker.check(parsed, file=f"notiflows/n-{i}/notiflow.json")
            problems += len(found)
            invalid += any(p.severity.value == "error" for p in found)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu

    print(f"notiflows checked:   {args.count} ({size / 1024:.0f} KiB of JSON, schema: {source})")
    print(f"invalid notiflows:   {invalid} ({problems} problems)")
    print(f"elapsed:             {elapsed:.3f} s wall, {cpu:.3f} s CPU")
    print(f"notiflows/second:    {args.count / elapsed:,.0f} (wall), {args.count / cpu:,.0f} (CPU)")
    print(f"validator compiled:  {store.compile_count} time(s)")
    return 0 if store.compile_count == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
