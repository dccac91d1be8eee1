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


def _history_depth(value: str) -> int:
    """0 means: search no git history (every difference is edited-remotely)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no history search) or more, got {number}")
    return number


class ArgvError(Exception):
    """A usage error, raised instead of argparse's print-and-exit so `main` can say it in the right format."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgvError(self, message)


def requested_format(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The --format the argv asks for (last one wins, as argparse does), else the default."""
    fmt = ""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg == "--format" and i + 1 < len(argv):
            fmt = argv[i + 1]
    if fmt in FORMATS:
        return fmt
    return "github" if env.get("GITHUB_ACTIONS") == "true" else "text"


def usage_error(exc: ArgvError, fmt: str) -> NoReturn:
    """Exit 1 (argparse's 2 means drift in CONTRACT section 3). Under `github`: one `::error` line on
    stdout, where every workflow command goes; otherwise argparse's usage and message on stderr."""
    from notiflows_deploy.report.annotations import TITLE, annotation

    prog = exc.parser.prog
    if fmt == "github":
        text = f"{prog}: {exc.message} (see `{prog} --help`)"
        print(annotation("error", text, title=TITLE), flush=True)
        raise SystemExit(1)
    exc.parser.print_usage(sys.stderr)
    print(f"{prog}: error: {exc.message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


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
        p.add_argument("--history-depth", type=_history_depth, default=50,
                       help="commits touching a notiflow searched behind head for the revision the server "
                       "holds (drift: the deployed one; plan/deploy: what counts as ours); 0: none")
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
        history_depth=args.history_depth,
        env=env,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    if argv and argv[0] == "emulator":
        from notiflows_deploy.emulator import main as emulator_main

        return emulator_main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except ArgvError as exc:
        usage_error(exc, requested_format(argv, env))
    if args.mode not in MODES:  # pragma: no cover - argparse already refuses
        return 1
    settings = settings_from_args(args, env)
    from notiflows_deploy.app import run_and_report

    try:
        return run_and_report(settings)
    except KeyboardInterrupt:
        print("notiflows-deploy: interrupted", file=sys.stderr)
        return 130
