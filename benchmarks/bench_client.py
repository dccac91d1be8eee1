"""Benchmark (not a test): the ManagementClient's overhead per call.

Runs the bundled emulator in a SEPARATE process (so the server does not share this process's GIL),
then times N sequential calls of:

  raw       requests.Session.get on the notiflow URL (same pool, headers, timeouts), body read only
  raw+json  the same plus json.loads
  client    ManagementClient.get_notiflow (gate, request id, retry loop, envelope checks, models)

and N/4 calls per worker of client.map(get_notiflow) with --concurrency workers.

    .venv/bin/python benchmarks/bench_client.py [-n 2000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import requests

from notiflows_deploy.api.client import ManagementClient
from notiflows_deploy.api.transport import USER_AGENT, Timeouts, build_session, new_request_id

TOKEN = "nf_at_bench"
PROJECT = "demo"
PAYLOAD = {
    "name": "Welcome Series",
    "active": True,
    "include_in_preferences": True,
    "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email",
         "channel_handle": "transactional-email",
         "template": {"channel_type": "email",
                      "data": {"subject": "Welcome!", "content_type": "html", "body": "<p>Hi</p>" * 50}}},
        {"handle": "wait_1", "type": "wait", "position": 2, "settings": {"duration": 1, "duration_unit": "days"}},
        {"handle": "end", "type": "end", "position": 3},
    ],
}


def timed(n: int, fn: Callable[[], object], rounds: int = 3) -> tuple[float, float]:
    """Best and median over `rounds` of the mean seconds per call."""
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        per_call.append((time.perf_counter() - start) / n)
    return min(per_call), statistics.median(per_call)


def interleaved(n: int, variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[float, float]]:
    """Round-robin over the variants (blocks of n calls) so drift and noise hit all alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(timed(n, fn, rounds=1)[0])
    return {name: (min(v), statistics.median(v)) for name, v in samples.items()}


class CannedSession(requests.Session):
    """No network: every request returns the same prepared answer (isolates the client's own cost)."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def request(self, method: str | bytes, url: str | bytes, *args: object, **kwargs: object) -> requests.Response:
        response = requests.Response()
        response.status_code = 200
        response._content = self.body
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        response.headers["x-request-id"] = "nfd_x"
        return response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    proc = subprocess.Popen(
        [sys.executable, "-m", "notiflows_deploy.emulator", "--token", TOKEN, "--project", PROJECT],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        with ManagementClient(base_url, TOKEN, PROJECT, concurrency=args.concurrency) as client:
            client.upsert_notiflow("welcome-series", PAYLOAD, expected_sha=None)
            url = f"{base_url}/projects/{PROJECT}/notiflows/welcome-series"
            session = build_session(args.concurrency)
            headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": USER_AGENT, "Accept": "application/json"}
            timeouts = Timeouts().as_tuple()

            def raw() -> object:
                return session.get(url, headers={**headers, "x-request-id": new_request_id()},
                                   timeout=timeouts).content

            def raw_json() -> object:
                return json.loads(session.get(url, headers={**headers, "x-request-id": new_request_id()},
                                              timeout=timeouts).content)

            def via_client() -> object:
                return client.get_notiflow("welcome-series")

            body = session.get(url, headers=headers, timeout=timeouts).content
            size = len(body)
            variants = {"raw": raw, "raw+json": raw_json, "client": via_client}
            for fn in variants.values():  # warm up connections and caches
                timed(200, fn, rounds=1)
            results = interleaved(args.n // 4, variants, rounds=12)

            with ManagementClient(base_url, TOKEN, PROJECT, session=CannedSession(body)) as offline:
                no_net = {
                    "json.loads only": timed(args.n, lambda: json.loads(body), rounds=5),
                    "client, canned": timed(args.n, lambda: offline.get_notiflow("welcome-series"), rounds=5),
                }

            handles = ["welcome-series"] * args.n
            start = time.perf_counter()
            out = client.map(client.get_notiflow, handles)
            parallel = time.perf_counter() - start
            assert not [r for r in out if isinstance(r, Exception)]
            session.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"python {sys.version.split()[0]}, requests {requests.__version__}, N={args.n}, "
          f"GET answer {size} bytes, emulator in a separate process")
    print(f"{'variant':<10} {'best µs/call':>13} {'median µs/call':>15}")
    for name, (best, median) in results.items():
        print(f"{name:<10} {best * 1e6:>13.1f} {median * 1e6:>15.1f}")
    overhead = (results["client"][0] - results["raw"][0]) * 1e6
    overhead_json = (results["client"][0] - results["raw+json"][0]) * 1e6
    print(f"client - raw: {overhead:.1f} µs, client - raw+json: {overhead_json:.1f} µs "
          f"(best of 12 interleaved blocks of {args.n // 4}; loopback noise is ~±50 µs)")
    print("without network (stub session returning the same body):")
    for name, (best, median) in no_net.items():
        print(f"  {name:<16} best {best * 1e6:7.1f} µs, median {median * 1e6:7.1f} µs")
    own = (no_net["client, canned"][0] - no_net["json.loads only"][0]) * 1e6
    print(f"  => the client's own work beyond json.loads: {own:.1f} µs per call")
    print(f"client.map, {args.concurrency} workers: {args.n} calls in {parallel:.2f} s "
          f"= {parallel / args.n * 1e6:.1f} µs/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
