"""The machine-readable report of CONTRACT section 6, and its atomic write."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from notiflows_deploy.model import RunResult

REPORT_VERSION = 1


def build_report(result: RunResult) -> dict[str, Any]:
    """RunResult -> the section 6 dict (plus `counts`, `exit_code`, run-level `errors`, `notes`)."""
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "mode": result.mode,
        "result": result.result,
        "exit_code": int(result.exit_code),
        "project": result.project,
        "base": result.base,
        "head": result.head,
        "counts": result.counts(),
        "notiflows": [n.to_dict() for n in result.notiflows],
        "errors": [p.to_dict() for p in result.errors],
        "notes": list(result.notes),
    }
    if result.fatal:
        report["fatal"] = result.fatal
    if result.failures:
        report["failures"] = list(result.failures)
    return report


def dumps_report(result: RunResult) -> str:
    return json.dumps(build_report(result), indent=2, ensure_ascii=False) + "\n"


def write_report(result: RunResult, path: str | os.PathLike[str]) -> Path:
    """Write the report atomically: a reader sees the old file or the whole new one, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(dumps_report(result))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the report is meant to be read by later steps
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
