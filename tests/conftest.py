"""Test-wide guards: no traffic beyond loopback, no schema downloads, isolated caches."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import PROJECT, TOKEN, Cli
from emulator_support import running_emulator

from notiflows_deploy.emulator import Emulator

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return True  # AF_UNIX and friends


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _is_loopback(address):
        raise OSError(f"test network guard: refusing to connect to {address!r} (loopback only)")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_loopback(address):
        raise OSError(f"test network guard: refusing to connect to {address!r} (loopback only)")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    cache: Path = tmp_path_factory.mktemp("nfd-cache")
    monkeypatch.setenv("NOTIFLOWS_DEPLOY_CACHE_DIR", str(cache))
    monkeypatch.setenv("NOTIFLOWS_DEPLOY_SCHEMA_FETCH", "0")
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_EVENT_NAME",
                 "GITHUB_EVENT_PATH", "NOTIFLOWS_TOKEN", "NOTIFLOWS_PROJECT", "NOTIFLOWS_BASE_URL",
                 "NOTIFLOWS_DEPLOY_BACKOFF_BASE", "NOTIFLOWS_DEPLOY_DEBUG", "NOTIFLOWS_DEPLOY_REPORT_PATH_SHOWN"):
        monkeypatch.delenv(name, raising=False)
    yield


# --- for the end-to-end tests (tests/test_e2e_deploy.py, tests/test_range_cli.py) ------------------


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 with the e2e token and project."""
    with running_emulator(tokens=[TOKEN], projects=[PROJECT]) as emulator:
        yield emulator


@pytest.fixture()
def cli(emu: Emulator, tmp_path: Path) -> Cli:
    """Runs the CLI against `emu`, each run's report under tmp_path/reports."""
    reports = tmp_path / "reports"
    reports.mkdir()
    return Cli(emu.base_url, reports)
