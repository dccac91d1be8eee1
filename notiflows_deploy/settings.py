"""Run settings: the parsed command line plus the environment, frozen.

Precedence (CONTRACT section 2): flag > environment variable > notiflows.json > default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("validate", "plan", "deploy", "drift")
FORMATS = ("text", "json", "github")


@dataclass(frozen=True)
class Settings:
    mode: str
    repo: Path = Path(".")
    base: str | None = None
    head: str | None = None
    all: bool = False
    project: str | None = None  # the --project flag only; config.load_config settles precedence
    api_url: str | None = None  # the --api-url flag only; see api_url_from()
    publish: bool = False
    force: bool = False
    concurrency: int = 4
    report_json: Path | None = None
    summary: Path | None = None
    format: str = "text"
    schema: Path | None = None
    fail_on_drift: bool = True
    comment_on_pr: bool = False
    history_depth: int = 50
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def token(self) -> str:
        return self.env.get("NOTIFLOWS_TOKEN", "").strip()

    def resolved_api_url(self, default: str) -> tuple[str, str]:
        """The Management API base URL and where it came from."""
        if self.api_url:
            return self.api_url.rstrip("/"), "--api-url"
        if self.env.get("NOTIFLOWS_BASE_URL", "").strip():
            return self.env["NOTIFLOWS_BASE_URL"].strip().rstrip("/"), "NOTIFLOWS_BASE_URL"
        return default, "default"
