from __future__ import annotations

from pathlib import Path

import pytest

from notiflows_deploy.config import load_config
from notiflows_deploy.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_walks_up_and_applies_defaults(tmp_path: Path) -> None:
    write(tmp_path / "notiflows.json", "{}")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    cfg = load_config(deep, env={})
    assert cfg.root == tmp_path.resolve()
    assert cfg.notiflows_dir == ".notiflows"
    assert cfg.notiflows_root == ".notiflows/notiflows"
    assert cfg.project is None and cfg.project_source == ""


@pytest.mark.parametrize(
    ("flag", "env", "expected", "source"),
    [
        ("from-flag", {"NOTIFLOWS_PROJECT": "from-env"}, "from-flag", "--project"),
        (None, {"NOTIFLOWS_PROJECT": "from-env"}, "from-env", "NOTIFLOWS_PROJECT"),
        (None, {}, "from-file", "notiflows.json"),
        (None, {"NOTIFLOWS_PROJECT": ""}, "from-file", "notiflows.json"),
    ],
)
def test_project_precedence(tmp_path: Path, flag: str | None, env: dict[str, str], expected: str, source: str) -> None:
    write(tmp_path / "notiflows.json", '{"project": "from-file", "notiflowsDir": "nf"}')
    cfg = load_config(tmp_path, project_flag=flag, env=env)
    assert (cfg.project, cfg.project_source, cfg.notiflows_dir) == (expected, source, "nf")


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no notiflows\.json found") as info:
        load_config(tmp_path, env={})
    assert "notiflowsDir" in info.value.hint


def test_broken_config_reports_position(tmp_path: Path) -> None:
    write(tmp_path / "notiflows.json", '{\n  "project": "x",\n}')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert (info.value.file, info.value.line, info.value.column) == ("notiflows.json", 3, 1)


@pytest.mark.parametrize("value", ['"../outside"', '"/abs"', "42", '""'])
def test_notiflows_dir_must_stay_inside(tmp_path: Path, value: str) -> None:
    write(tmp_path / "notiflows.json", '{"notiflowsDir": ' + value + "}")
    with pytest.raises(ConfigError, match="notiflowsDir"):
        load_config(tmp_path, env={})


def test_non_object_and_non_utf8(tmp_path: Path) -> None:
    write(tmp_path / "notiflows.json", "[]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(tmp_path, env={})
    (tmp_path / "notiflows.json").write_bytes(b'{"project": "\xff"}')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path, env={})
