"""Find and read `notiflows.json`; settle the project slug by precedence.

Precedence for the project: `--project` > `NOTIFLOWS_PROJECT` > `notiflows.json`. A blank value
(empty or only spaces, e.g. an unset workflow input passed as `--project ''`) counts as unset at
every level, so it never overrides the next one.

Errors point at the offending key in notiflows.json (line/column). `notiflowsDir` must stay inside
the repository, also through symlinks: a link that leads outside is refused like a pointer's.
A UTF-8 byte order mark is tolerated, as in notiflow.json.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notiflows_deploy.errors import ConfigError
from notiflows_deploy.jsonpos import JsonSyntaxError, ParsedJson, parse_json

CONFIG_NAME = "notiflows.json"
DEFAULT_NOTIFLOWS_DIR = ".notiflows"
DEFAULT_API_URL = "https://api.notiflows.com/management/v1"
_BOM = "\ufeff"


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
    """Walk up from `start` to the first directory holding notiflows.json.

    Not finding one is a ConfigError without a file (there is none to point at) that says where it looked.
    """
    start = start.resolve()
    if not start.exists():
        raise ConfigError(f"--repo {start} does not exist", hint="pass an existing directory inside your repo")
    here = start if start.is_dir() else start.parent
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} found in {here} or any parent directory (up to {here.anchor})",
        hint=f"run from inside your repo, pass --repo, or create {CONFIG_NAME} "
        '(e.g. {"notiflowsDir": ".notiflows", "project": "my-app"})',
    )


def _parsed(text: str, *, file: str) -> ParsedJson:
    if not text.strip():
        raise ConfigError(f"{file} is empty", file=file,
                          hint='e.g. {"notiflowsDir": ".notiflows", "project": "my-app"}')
    try:
        return parse_json(text)
    except JsonSyntaxError as exc:
        raise ConfigError(
            f"{file} is not valid JSON: {exc.message}", file=file, line=exc.line, column=exc.column,
            hint="fix the JSON syntax at that position",
        ) from None


def parse_config(text: str, *, file: str) -> dict[str, Any]:
    return _config_object(_parsed(text.removeprefix(_BOM), file=file), file=file)


def _config_object(parsed: ParsedJson, *, file: str) -> dict[str, Any]:
    if not isinstance(parsed.value, dict):
        raise ConfigError(f"{file} must hold a JSON object", file=file, hint='e.g. {"notiflowsDir": ".notiflows"}')
    return parsed.value


def _at_key(parsed: ParsedJson | None, key: str) -> dict[str, int]:
    """line/column keyword arguments for a ConfigError about `key` (1:1 without a parsed file)."""
    if parsed is None:
        return {}
    line, column = parsed.locate((key,), key=True)
    return {"line": line, "column": column}


def normalise_notiflows_dir(value: Any, *, file: str, parsed: ParsedJson | None = None) -> str:
    where = _at_key(parsed, "notiflowsDir")
    if value is None:
        return DEFAULT_NOTIFLOWS_DIR
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{file}: notiflowsDir must be a non-empty string", file=file, hint='e.g. ".notiflows"',
                          **where)
    norm = posixpath.normpath(value.replace("\\", "/"))
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        raise ConfigError(
            f"{file}: notiflowsDir {value!r} must be a relative path inside the repository",
            file=file, hint='use a path such as ".notiflows"', **where,
        )
    return norm


def check_inside(root: Path, notiflows_dir: str, *, file: str, parsed: ParsedJson | None = None) -> None:
    """Refuse a notiflowsDir (or its notiflows/) that a symlink leads outside `root`."""
    real_root = root.resolve()
    current = root
    for part in (*notiflows_dir.split("/"), "notiflows"):
        current = current / part
        if not current.is_symlink():
            continue
        target = current.resolve()
        if not target.is_relative_to(real_root):
            shown = current.relative_to(root).as_posix()
            raise ConfigError(
                f"{file}: notiflowsDir {notiflows_dir!r}: {shown} is a symlink that leads outside the "
                f"repository (to {target})",
                file=file,
                hint="replace the symlink with the directory itself (or a link to a directory inside the repository)",
                **_at_key(parsed, "notiflowsDir"),
            )


def _blank_is_unset(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


def load_config(start: Path, *, project_flag: str | None = None, env: Mapping[str, str]) -> ProjectConfig:
    path = find_config(start)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8", file=CONFIG_NAME, hint="save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=CONFIG_NAME) from None
    parsed = _parsed(text.removeprefix(_BOM), file=CONFIG_NAME)
    raw = _config_object(parsed, file=CONFIG_NAME)
    notiflows_dir = normalise_notiflows_dir(raw.get("notiflowsDir"), file=CONFIG_NAME, parsed=parsed)
    check_inside(path.parent, notiflows_dir, file=CONFIG_NAME, parsed=parsed)
    file_project = raw.get("project")
    if file_project is not None and not isinstance(file_project, str):
        raise ConfigError(f"{CONFIG_NAME}: project must be a string", file=CONFIG_NAME, hint='e.g. "my-app"',
                          **_at_key(parsed, "project"))
    project, source = None, ""
    for value, name in (
        (project_flag, "--project"),
        (env.get("NOTIFLOWS_PROJECT"), "NOTIFLOWS_PROJECT"),
        (file_project, CONFIG_NAME),
    ):
        slug = _blank_is_unset(value)
        if slug is not None:
            project, source = slug, name
            break
    return ProjectConfig(root=path.parent, notiflows_dir=notiflows_dir, project=project, project_source=source, raw=raw)
