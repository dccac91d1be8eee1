"""Command line: argv -> Settings -> run -> reports -> exit code.

This is the only place where exceptions become messages; no traceback reaches the user unless
NOTIFLOWS_DEPLOY_DEBUG=1 asks for one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from notiflows_deploy import __version__
from notiflows_deploy.settings import FORMATS, MODES, Settings

_BOOL = {"true": True, "false": False}


def _bool_arg(value: str) -> bool:
    try:
        return _BOOL[value.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}") from None


def _concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 32:
        raise argparse.ArgumentTypeError(f"must be between 1 and 32, got {number}")
    return number


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors; CONTRACT section 3 reserves 2 for drift, so use 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="notiflows-deploy",
        description="Validate, plan, deploy and drift-check Notiflows notiflows kept in git.",
        epilog="The token is read from NOTIFLOWS_TOKEN only. Exit codes: 0 success/no-changes, 1 error, "
        "2 drift, 3 conflict, 4 invalid, 5 failed.",
    )
    parser.add_argument("--version", action="version", version=f"notiflows-deploy {__version__}")
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True, parser_class=_Parser)
    for mode, help_text in (
        ("validate", "local checks only: JSON, schema, format rules, extracted files, env vars"),
        ("plan", "validate, read the server and say what a deploy would do (never writes)"),
        ("deploy", "plan, then push only the changed notiflows, conflict-safe"),
        ("drift", "compare every notiflow in the repo with the server (never writes)"),
    ):
        p = sub.add_parser(mode, help=help_text, description=help_text)
        p.add_argument("--repo", type=Path, default=Path("."), help="where to start looking for notiflows.json")
        p.add_argument("--base", help="base of the change range (default: from the GitHub event, else HEAD~1)")
        p.add_argument("--head", help="head of the change range (default: from the GitHub event, else HEAD)")
        p.add_argument("--all", action="store_true", help="treat every notiflow as changed")
        p.add_argument("--project", help="project slug (> NOTIFLOWS_PROJECT > notiflows.json)")
        p.add_argument("--api-url", help="Management API base URL (> NOTIFLOWS_BASE_URL > default)")
        p.add_argument("--publish", action="store_true", help="publish each pushed notiflow")
        p.add_argument("--force", action="store_true", help="push over a conflict (reported as forced)")
        p.add_argument("--concurrency", type=_concurrency, default=4, help="parallel API requests (1-32)")
        p.add_argument("--report-json", type=Path, help="write the machine-readable report here")
        p.add_argument("--summary", type=Path, help="write the Markdown summary here")
        p.add_argument("--format", choices=FORMATS, help="console output (default: github under Actions)")
        p.add_argument("--schema", type=Path, help="validate against this JSON Schema file")
        p.add_argument("--fail-on-drift", type=_bool_arg, default=True, metavar="true|false",
                       help="drift mode: exit 2 when anything drifted (default true)")
        p.add_argument("--comment-on-pr", action="store_true",
                       help="on pull_request events keep one plan comment on the PR (needs GITHUB_TOKEN)")
        p.add_argument("--history-depth", type=int, default=50,
                       help="drift: how many commits per notiflow to search for the deployed revision")
    emulator = sub.add_parser("emulator", help="run the bundled local Management API emulator", add_help=False)
    emulator.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    fmt = args.format or ("github" if env.get("GITHUB_ACTIONS") == "true" else "text")
    return Settings(
        mode=args.mode,
        repo=args.repo,
        base=args.base,
        head=args.head,
        all=args.all,
        project=args.project,
        api_url=args.api_url,
        publish=args.publish,
        force=args.force,
        concurrency=args.concurrency,
        report_json=args.report_json,
        summary=args.summary,
        format=fmt,
        schema=args.schema,
        fail_on_drift=args.fail_on_drift,
        comment_on_pr=args.comment_on_pr,
        history_depth=max(1, args.history_depth),
        env=env,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    if argv and argv[0] == "emulator":
        from notiflows_deploy.emulator import main as emulator_main

        return emulator_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.mode not in MODES:  # pragma: no cover - argparse already refuses
        return 1
    settings = settings_from_args(args, env)
    from notiflows_deploy.app import run_and_report

    try:
        return run_and_report(settings)
    except KeyboardInterrupt:
        print("notiflows-deploy: interrupted", file=sys.stderr)
        return 130
