"""`python -m notiflows_deploy.emulator` / `main()` as a real process: URL first, clean exit on signals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from notiflows_deploy.emulator.cli import build_parser


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "notiflows_deploy.emulator", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    return proc, line


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_defaults_print_url_first_and_exit_cleanly(sig: int) -> None:
    proc, url = start()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/management/v1")
        r = requests.get(f"{url}/projects/demo/whoami", headers={"Authorization": "Bearer nf_at_emulator"})
        assert r.status_code == 200 and r.json()["project"]["slug"] == "demo"
    finally:
        code = stop(proc, sig)
    assert code == 0
    assert proc.stdout is not None and proc.stdout.read() == ""  # nothing but the URL on stdout


def test_options_tokens_projects_faults_and_data(tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    proc, url = start("--token", "nf_at_1", "--token", "nf_at_2", "--project", "a", "--project", "b",
                      "--data", str(data), "--rate-limit", "2/60", "--seed", "3")
    try:
        h = {"Authorization": "Bearer nf_at_2"}
        assert requests.get(f"{url}/projects/b/whoami", headers=h).status_code == 200
        assert requests.put(f"{url}/projects/a/notiflows/flow", headers=h, json={}).status_code == 201
        assert requests.get(f"{url}/projects/a/whoami", headers=h).status_code == 429
        assert requests.get(f"{url}/projects/demo/whoami",
                            headers={"Authorization": "Bearer nf_at_1"}).status_code == 404
    finally:
        assert stop(proc) == 0
    proc, url = start("--token", "t", "--project", "a", "--data", str(data))
    try:
        r = requests.get(f"{url}/projects/a/notiflows/flow", headers={"Authorization": "Bearer t"})
        assert r.status_code == 200 and r.json()["handle"] == "flow"
    finally:
        assert stop(proc) == 0


def test_port_in_use_fails_with_exit_1() -> None:
    proc, url = start()
    try:
        port = url.split(":")[2].split("/")[0]
        other = subprocess.run([sys.executable, "-m", "notiflows_deploy.emulator", "--port", port],
                               capture_output=True, text=True, timeout=20)
        assert other.returncode == 1 and other.stdout == ""
        assert "emulator" in other.stderr
    finally:
        stop(proc)


def test_help_documents_defaults() -> None:
    text = build_parser().format_help()
    assert "nf_at_emulator" in text and "demo" in text and "--rate-limit" in text


def test_main_in_process_bad_rate_limit(capsys: pytest.CaptureFixture[str]) -> None:
    from notiflows_deploy.emulator import main

    assert main(["--rate-limit", "0/1"]) == 1
    assert "rate limit" in capsys.readouterr().err
