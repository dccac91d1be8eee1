"""`notiflows-deploy emulator`: run the bundled Management API emulator until SIGINT/SIGTERM.

Defaults when no --token / --project is given: token "nf_at_emulator", project "demo".
The first line of standard output is the API base URL (e.g. http://127.0.0.1:43123/management/v1);
control endpoints (no token needed) live under http://HOST:PORT/_emulator/ : GET state, GET faults,
GET requests, POST faults, POST fail-next, POST dashboard-edit, POST remote-only, POST reset.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from notiflows_deploy.emulator.faults import parse_rate_limit
from notiflows_deploy.emulator.server import DEFAULT_PROJECT, DEFAULT_TOKEN, Emulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notiflows-deploy emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--data", metavar="FILE", help="persist state to this JSON file (loaded at start)")
    parser.add_argument("--token", action="append", metavar="T",
                        help=f"accepted bearer token, repeatable (default {DEFAULT_TOKEN})")
    parser.add_argument("--project", action="append", metavar="SLUG",
                        help=f"project slug, repeatable (default {DEFAULT_PROJECT})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per API request")
    parser.add_argument("--rate-limit", metavar="N/WINDOW", help='e.g. "100/1": 100 requests per second per token')
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of API requests answered 503")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of API requests dropped unanswered")
    parser.add_argument("--seed", type=int, help="seed of the random faults")
    parser.add_argument("--fresh-drafts", action="store_true",
                        help="after a publish, create a fresh draft equal to the published version")
    return parser


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port}: a port is 0 (any free port) to 65535")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    faults: dict[str, Any] = {"latency_ms": args.latency_ms, "error_rate": args.error_rate,
                              "drop_rate": args.drop_rate, "seed": args.seed}
    try:
        _check_port(args.port)
        if args.rate_limit:
            faults["rate_limit"], faults["rate_window"] = parse_rate_limit(args.rate_limit)
        emulator = Emulator(tokens=args.token, projects=args.project, data_file=args.data, faults=faults,
                            host=args.host, port=args.port, fresh_drafts=args.fresh_drafts)
        base_url = emulator.start()
    except (ValueError, OSError, OverflowError) as exc:  # OverflowError: what bind() says about odd ports
        print(f"notiflows-deploy emulator: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Signal handlers can only be installed from the main thread (main() may be called elsewhere in tests).
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    try:
        print(base_url, flush=True)
        print(f"projects: {', '.join(emulator.projects)}; control: {emulator.root_url}/_emulator/state",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
