"""The README stays true: its workflow snippets are the example files, its set-up commands exist."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["plan", "deploy", "drift"])
def test_workflow_snippets_are_the_example_files(name: str) -> None:
    example = (ROOT / "examples" / "workflows" / f"{name}.yml").read_text(encoding="utf-8").rstrip("\n")
    assert example in README, f"README's {name}.yml snippet differs from examples/workflows/{name}.yml"


def test_setup_commands_exist_and_are_executable() -> None:
    for script in ("scripts/demo", "scripts/test", "scripts/lint", "scripts/bootstrap"):
        path = ROOT / script
        assert path.is_file() and path.stat().st_mode & 0o111, script
        assert f"{script}" in README or script == "scripts/bootstrap"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test" in ci and "scripts/lint" in ci


def test_every_action_input_is_documented() -> None:
    import yaml

    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    for name in (*action["inputs"], *action["outputs"]):
        assert f"| `{name}` |" in README, name
