from __future__ import annotations

import pytest

from notiflows_deploy.model import ExitCode, NotiflowOutcome, Problem, RunResult, Status


def outcome(status: Status, handle: str = "a") -> NotiflowOutcome:
    return NotiflowOutcome(handle=handle, status=status, path=f".notiflows/notiflows/{handle}")


@pytest.mark.parametrize(
    ("mode", "statuses", "result", "code"),
    [
        ("deploy", [], "no-changes", ExitCode.OK),
        ("deploy", [Status.UNCHANGED, Status.REMOVED], "no-changes", ExitCode.OK),
        ("deploy", [Status.CREATED, Status.UNCHANGED], "success", ExitCode.OK),
        ("deploy", [Status.FORCED], "success", ExitCode.OK),
        ("plan", [Status.WOULD_UPDATE], "success", ExitCode.OK),
        ("validate", [Status.VALID], "success", ExitCode.OK),
        ("deploy", [Status.FAILED, Status.CONFLICT], "conflict", ExitCode.CONFLICT),
        ("deploy", [Status.FAILED, Status.CONFLICT, Status.INVALID], "invalid", ExitCode.INVALID),
        ("deploy", [Status.FAILED, Status.CREATED], "failed", ExitCode.FAILED),
        ("drift", [Status.IN_SYNC], "success", ExitCode.OK),
        ("drift", [Status.IN_SYNC, Status.REMOTE_ONLY], "drift", ExitCode.DRIFT),
        ("drift", [Status.REMOTE_ONLY, Status.FAILED], "failed", ExitCode.FAILED),
    ],
)
def test_result_precedence(mode: str, statuses: list[Status], result: str, code: ExitCode) -> None:
    run = RunResult(mode=mode, notiflows=[outcome(s, f"n{i}") for i, s in enumerate(statuses)])
    assert run.result == result
    assert run.exit_code == code


def test_error_beats_everything_and_drift_can_be_non_fatal() -> None:
    run = RunResult(mode="deploy", notiflows=[outcome(Status.INVALID)], fatal="boom")
    assert (run.result, run.exit_code) == ("error", ExitCode.ERROR)
    drift = RunResult(mode="drift", notiflows=[outcome(Status.UNDEPLOYED)], fail_on_drift=False)
    assert (drift.result, drift.exit_code) == ("drift", ExitCode.OK)


def test_outcome_dict_has_contract_fields() -> None:
    o = outcome(Status.INVALID)
    o.errors.append(Problem("f.json", 3, 4, "schema", "bad"))
    data = o.to_dict()
    for key in ("handle", "status", "path", "remote_sha_before", "remote_sha_after", "version", "published",
                "errors", "diff"):
        assert key in data
    assert data["errors"] == [{"file": "f.json", "line": 3, "column": 4, "message": "bad", "code": "schema"}]
