"""Render docs/example-summary.md from the example RunResult: `python tests/make_example_summary.py`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notiflows_deploy.report.summary import example_result, render_summary

DOC = Path(__file__).resolve().parent.parent / "docs" / "example-summary.md"


def render() -> str:
    return render_summary(example_result(), report_path="/home/runner/work/_temp/notiflows-deploy/report.json")


def main() -> None:
    DOC.write_text(render(), encoding="utf-8")
    print(DOC)


if __name__ == "__main__":
    main()
