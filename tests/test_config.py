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


# --- positions, BOM, blank project, symlinks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{\n  "notiflowsDir": ".notiflows",\n  "project": 5\n}', '"project"'),
        ('{\n  "project": "x",\n    "notiflowsDir": "../out"\n}', '"notiflowsDir"'),
        ('{"project": "x", "notiflowsDir": 7}', '"notiflowsDir"'),
    ],
)
def test_config_errors_point_at_the_key(tmp_path: Path, text: str, key: str) -> None:
    write(tmp_path / "notiflows.json", text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    offset = text.index(key)
    expected = (text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset))
    assert (info.value.file, info.value.line, info.value.column) == ("notiflows.json", *expected)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "notiflows.json").write_bytes(b'\xef\xbb\xbf{"project": "bom", "notiflowsDir": "nf"}')
    cfg = load_config(tmp_path, env={})
    assert (cfg.project, cfg.notiflows_dir) == ("bom", "nf")
    (tmp_path / "notiflows.json").write_bytes(b'\xef\xbb\xbf{\n "project": 1}')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert (info.value.line, info.value.column) == (2, 2)  # the BOM takes no column


def test_duplicate_keys_are_refused_at_their_position(tmp_path: Path) -> None:
    write(tmp_path / "notiflows.json", '{"project": "a",\n "project": "b"}')
    with pytest.raises(ConfigError, match="duplicate key") as info:
        load_config(tmp_path, env={})
    assert (info.value.line, info.value.column) == (2, 2)


@pytest.mark.parametrize(
    ("flag", "env", "expected", "source"),
    [
        ("  ", {"NOTIFLOWS_PROJECT": "from-env"}, "from-env", "NOTIFLOWS_PROJECT"),
        ("", {}, "from-file", "notiflows.json"),
        (" \t", {"NOTIFLOWS_PROJECT": " "}, "from-file", "notiflows.json"),
        (" padded ", {}, "padded", "--project"),
    ],
)
def test_a_blank_project_counts_as_unset(
    tmp_path: Path, flag: str, env: dict[str, str], expected: str, source: str
) -> None:
    write(tmp_path / "notiflows.json", '{"project": "from-file"}')
    cfg = load_config(tmp_path, project_flag=flag, env=env)
    assert (cfg.project, cfg.project_source) == (expected, source)
    write(tmp_path / "notiflows.json", '{"project": "   "}')
    assert load_config(tmp_path, project_flag="  ", env={}).project is None


def test_a_notiflows_dir_symlink_that_leads_outside_is_refused(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (outside / "notiflows").mkdir(parents=True)
    text = '{\n  "project": "x",\n  "notiflowsDir": ".notiflows"\n}'
    write(repo / "notiflows.json", text)
    (repo / ".notiflows").symlink_to(outside)
    with pytest.raises(ConfigError) as info:
        load_config(repo, env={})
    assert ".notiflows is a symlink that leads outside the repository" in info.value.message
    assert (info.value.line, info.value.column) == (3, 3)
    assert "replace the symlink" in info.value.hint


def test_a_notiflows_subdirectory_symlink_outside_is_refused_too(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    outside.mkdir()
    write(repo / "notiflows.json", "{}")
    (repo / ".notiflows").mkdir()
    (repo / ".notiflows" / "notiflows").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"\.notiflows/notiflows is a symlink"):
        load_config(repo, env={})


def test_a_notiflows_dir_symlink_inside_the_repository_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real" / "notiflows").mkdir(parents=True)
    write(tmp_path / "notiflows.json", "{}")
    (tmp_path / ".notiflows").symlink_to("real")
    assert load_config(tmp_path, env={}).notiflows_dir == ".notiflows"


def test_a_missing_config_names_no_file_and_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert info.value.file is None
    assert str(tmp_path.resolve()) in info.value.message and "any parent directory" in info.value.message
