"""Find and read `notiflows.json`; settle the project slug by precedence.

Precedence for the project: `--project` > `NOTIFLOWS_PROJECT` > `notiflows.json`.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notiflows_deploy.errors import ConfigError

CONFIG_NAME = "notiflows.json"
DEFAULT_NOTIFLOWS_DIR = ".notiflows"
DEFAULT_API_URL = "https://api.notiflows.com/management/v1"


@dataclass(frozen=True)
class ProjectConfig:
    root: Path  # the directory holding notiflows.json
    notiflows_dir: str  # relative to root, POSIX, normalised (".notiflows")
    project: str | None
    project_source: str  # "--project", "NOTIFLOWS_PROJECT", "notiflows.json" or "" when unset
    raw: Mapping[str, Any]

    @property
    def notiflows_root(self) -> str:
        """Where notiflow directories live, relative to `root`."""
        return posixpath.join(self.notiflows_dir, "notiflows")


def find_config(start: Path) -> Path:
    """Walk up from `start` to the first directory holding notiflows.json."""
    start = start.resolve()
    if not start.exists():
        raise ConfigError(f"--repo {start} does not exist", hint="pass an existing directory inside your repo")
    here = start if start.is_dir() else start.parent
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} found in {here} or any parent directory",
        hint=f"run from inside your repo, pass --repo, or create {CONFIG_NAME} "
        '(e.g. {"notiflowsDir": ".notiflows", "project": "my-app"})',
    )


def parse_config(text: str, *, file: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{file} is not valid JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno,
            hint="fix the JSON syntax at that position",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a JSON object", file=file, hint='e.g. {"notiflowsDir": ".notiflows"}')
    return data


def normalise_notiflows_dir(value: Any, *, file: str) -> str:
    if value is None:
        return DEFAULT_NOTIFLOWS_DIR
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{file}: notiflowsDir must be a non-empty string", file=file, hint='e.g. ".notiflows"')
    norm = posixpath.normpath(value.replace("\\", "/"))
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        raise ConfigError(
            f"{file}: notiflowsDir {value!r} must be a relative path inside the repository",
            file=file, hint='use a path such as ".notiflows"',
        )
    return norm


def load_config(start: Path, *, project_flag: str | None = None, env: Mapping[str, str]) -> ProjectConfig:
    path = find_config(start)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8", file=CONFIG_NAME, hint="save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=CONFIG_NAME) from None
    raw = parse_config(text, file=CONFIG_NAME)
    notiflows_dir = normalise_notiflows_dir(raw.get("notiflowsDir"), file=CONFIG_NAME)
    file_project = raw.get("project")
    if file_project is not None and not isinstance(file_project, str):
        raise ConfigError(f"{CONFIG_NAME}: project must be a string", file=CONFIG_NAME, hint='e.g. "my-app"')
    project, source = None, ""
    for value, name in (
        (project_flag, "--project"),
        (env.get("NOTIFLOWS_PROJECT"), "NOTIFLOWS_PROJECT"),
        (file_project, CONFIG_NAME),
    ):
        if value:
            project, source = value.strip(), name
            break
    return ProjectConfig(root=path.parent, notiflows_dir=notiflows_dir, project=project, project_source=source, raw=raw)
