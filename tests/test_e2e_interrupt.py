"""A deploy that dies half-way, then runs again, must converge: real processes, real signals.

The emulator and the deploy both run as subprocesses (`python -m notiflows_deploy ...`); the
emulator persists to a --data file. The deploy is SIGKILLed after a few PUTs have landed (seen
in the emulator's request log), or the emulator itself is stopped mid-deploy.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    EmulatorProcess,
    body_of,
    current,
    deploy_process,
    flows,
    make_repo,
    set_body,
    successful_puts,
    wait_until,
)
from gitutil import TestRepo

HANDLES = [f"flow-{i:02d}" for i in range(20)]


def seeded(
    tmp_path: Path, handles: list[str], *, latency_ms: float, first_deploy: bool = False
) -> tuple[TestRepo, EmulatorProcess]:
    """Commit 1 deployed (latency 0), commit 2 changes every notiflow, then the latency is set.

    first_deploy: nothing is deployed; the only commit (a root commit) holds the "v2" content.
    """
    repo = make_repo(tmp_path / "repo", *handles)
    emulator = EmulatorProcess(tmp_path / "state.json")
    if first_deploy:
        for handle in handles:
            set_body(repo, handle, f"<p>{handle} v2</p>\n")
        repo.git("commit", "-q", "--amend", "-a", "--no-edit")
        emulator.control("POST", "faults", {"latency_ms": latency_ms})
        return repo, emulator
    code, report = run_deploy(repo, emulator, tmp_path / "seed.json", "--all", "--concurrency", "8")
    assert code == 0 and {n["status"] for n in report["notiflows"]} == {"created"}
    for handle in handles:
        set_body(repo, handle, f"<p>{handle} v2</p>\n")
    repo.commit("change every notiflow")
    emulator.control("POST", "faults", {"latency_ms": latency_ms})
    return repo, emulator


def run_deploy(repo: TestRepo, emulator: EmulatorProcess, report: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = deploy_process(repo.path, emulator.base_url, report, *args)
    stdout, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stdout + stderr, stdout + stderr
    return proc.returncode, json.loads(report.read_text(encoding="utf-8"))


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {n["handle"]: n["status"] for n in report["notiflows"]}


def assert_converged(emulator: EmulatorProcess, handles: list[str], version: int = 2) -> None:
    state = emulator.state()
    for handle in handles:
        assert body_of(state, handle) == f"<p>{handle} v2</p>\n", handle
        assert flows(state)[handle]["current"] == version, handle  # one new version, never two


@pytest.fixture()
def cleanup() -> Iterator[list[Any]]:
    stack: list[Any] = []
    yield stack
    for item in reversed(stack):
        if hasattr(item, "stop"):
            item.stop()
        elif item.poll() is None:
            item.kill()
            item.wait(timeout=10)


@pytest.mark.parametrize("kind", ["update", "create"])
def test_killed_deploy_converges_on_the_next_run(kind: str, tmp_path: Path, cleanup: list[Any]) -> None:
    repo, emulator = seeded(tmp_path, HANDLES, latency_ms=100, first_deploy=kind == "create")
    pushed_status, version = ("updated", 2) if kind == "update" else ("created", 1)
    cleanup.append(emulator)
    mark = len(emulator.requests())

    proc = deploy_process(repo.path, emulator.base_url, tmp_path / "killed.json", "--concurrency", "2")
    cleanup.append(proc)
    landed = wait_until(lambda: sum(successful_puts(emulator.requests()[mark:]).values()) >= 3, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert landed, "no PUT landed before the timeout"
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.json").exists()  # it really died before reporting
    time.sleep(0.3)  # a PUT in flight when the client died may still land (100 ms latency)
    pushed = set(successful_puts(emulator.requests()[mark:]))
    assert 3 <= len(pushed) < len(HANDLES)

    code, report = run_deploy(repo, emulator, tmp_path / "rerun.json", "--concurrency", "2")
    assert code == 0, report
    got = statuses(report)
    assert set(got) == set(HANDLES)
    assert {h for h, s in got.items() if s == "unchanged"} == pushed  # not conflict, not pushed again
    assert {h for h, s in got.items() if s == pushed_status} == set(HANDLES) - pushed
    assert_converged(emulator, HANDLES, version)
    puts = successful_puts(emulator.requests()[mark:])
    assert set(puts) == set(HANDLES) and max(puts.values()) == 1

    code, report = run_deploy(repo, emulator, tmp_path / "third.json")
    assert code == 0 and report["result"] == "no-changes"
    assert set(statuses(report).values()) == {"unchanged"}
    assert successful_puts(emulator.requests()[mark:]) == puts


def test_server_down_mid_deploy_fails_the_rest_then_converges(tmp_path: Path, cleanup: list[Any]) -> None:
    handles = HANDLES[:8]
    repo, emulator = seeded(tmp_path, handles, latency_ms=100)
    cleanup.append(emulator)
    mark = len(emulator.requests())

    proc = deploy_process(repo.path, emulator.base_url, tmp_path / "down.json", "--concurrency", "2")
    cleanup.append(proc)
    landed = wait_until(lambda: sum(successful_puts(emulator.requests()[mark:]).values()) >= 2, timeout=60)
    emulator.stop()  # SIGTERM: the emulator shuts down, in-flight requests are cut
    stopped = time.monotonic()
    assert landed
    stdout, stderr = proc.communicate(timeout=120)
    # The client's circuit breaker fails the rest at once: ~1.5 s here, against 7-15 s when every
    # remaining notiflow made its 5 attempts with backoff (bound: a few backoff rounds + exit).
    assert time.monotonic() - stopped < 6.0
    assert proc.returncode == 5, stdout + stderr
    assert "Traceback" not in stdout + stderr
    report = json.loads((tmp_path / "down.json").read_text(encoding="utf-8"))
    assert report["result"] == "failed"
    got = statuses(report)
    assert set(got) == set(handles)
    assert set(got.values()) <= {"updated", "failed"} and "failed" in got.values()
    for entry in report["notiflows"]:
        if entry["status"] == "failed":
            assert entry["detail"], entry
    assert any("the API has been unreachable for the last" in str(n["detail"]) for n in report["notiflows"])

    again = EmulatorProcess(tmp_path / "state.json")  # same data, new port, new URL
    cleanup.append(again)
    state = again.state()
    done = {h for h in handles if body_of(state, h) == f"<p>{h} v2</p>\n"}
    assert {h for h, s in got.items() if s == "updated"} <= done  # what was reported did land

    code, report = run_deploy(repo, again, tmp_path / "after.json")
    assert code == 0, report
    got = statuses(report)
    assert {h for h, s in got.items() if s == "unchanged"} == done
    assert {h for h, s in got.items() if s == "updated"} == set(handles) - done
    assert_converged(again, handles)
    assert {current(again.state(), h)["version_number"] for h in handles} == {2}
