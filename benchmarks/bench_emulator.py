"""Requests per second the emulator sustains on loopback: GET notiflow over keep-alive connections.

Run: python benchmarks/bench_emulator.py [--seconds 3] [--threads 1 4] [--in-process]

By default the emulator runs in its own process (`python -m notiflows_deploy.emulator`) so the
clients' GIL does not count against it. Two client kinds are measured: requests.Session (what the
project's client uses; its own per-request cost is the limit) and raw http.client (closer to the
emulator's own ceiling). Not a test: prints numbers.
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from notiflows_deploy.emulator import DEFAULT_PROJECT, DEFAULT_TOKEN, Emulator

HEADERS = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
PAYLOAD = {
    "name": "Bench",
    "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {"handle": "email_1", "type": "channel", "position": 1, "channel_type": "email", "channel_handle": "mail",
         "template": {"channel_type": "email", "data": {"subject": "Hi", "content_type": "html",
                                                           "body": "<p>" + "x" * 2000 + "</p>"}}},
        {"handle": "end", "type": "end", "position": 2},
    ],
}


def requests_client(url: str) -> Callable[[], int]:
    session = requests.Session()
    session.headers.update(HEADERS)
    return lambda: session.get(url).status_code


def raw_client(url: str) -> Callable[[], int]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def call() -> int:
        conn.request("GET", parts.path, headers=HEADERS)
        resp = conn.getresponse()
        resp.read()
        return resp.status

    return call


def run(make: Callable[[str], Callable[[], int]], url: str, threads: int, seconds: float) -> float:
    counts = [0] * threads
    errors = [0] * threads
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(i: int) -> None:
        call = make(url)
        call()  # open the connection before timing
        barrier.wait()
        n = 0
        while time.monotonic() < deadline[0]:
            if call() != 200:
                errors[i] += 1
            n += 1
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    deadline[0] = time.monotonic() + seconds + 0.05
    barrier.wait()
    start = time.monotonic()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - start
    if any(errors):
        print(f"    non-200 answers: {sum(errors)}")
    return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--in-process", action="store_true", help="run the emulator in this process")
    args = parser.parse_args()
    proc: subprocess.Popen[str] | None = None
    emu: Emulator | None = None
    if args.in_process:
        emu = Emulator()
        base = emu.start()
    else:
        proc = subprocess.Popen([sys.executable, "-m", "notiflows_deploy.emulator"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
    try:
        url = f"{base}/projects/{DEFAULT_PROJECT}/notiflows/bench"
        requests.put(url, json=PAYLOAD, headers=HEADERS).raise_for_status()
        size = len(requests.get(url, headers=HEADERS).content)
        where = "in this process" if args.in_process else "in its own process"
        print(f"GET notiflow ({size}-byte answer), emulator {where}, {args.seconds:g} s per run")
        for name, make in (("requests.Session", requests_client), ("http.client", raw_client)):
            for threads in args.threads:
                rps = run(make, url, threads, args.seconds)
                print(f"  {name:16} {threads} thread(s): {rps:8,.0f} requests/s")
    finally:
        if emu is not None:
            emu.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
