"""The runner's view of a step's log: which workflow commands it would act on (test helper)."""

from __future__ import annotations


def commands_outside_fences(log: str) -> list[str]:
    """The `::` workflow commands the runner acts on, honouring ::stop-commands::TOKEN ... ::TOKEN::."""
    active: list[str] = []
    stopped: str | None = None
    for line in log.splitlines():
        stripped = line.lstrip()
        if stopped:
            if stripped == f"::{stopped}::":
                stopped = None
        elif stripped.startswith("::stop-commands::"):
            stopped = stripped[len("::stop-commands::"):]
        elif stripped.startswith("::"):
            active.append(stripped)
    assert stopped is None, "a ::stop-commands:: fence is left open"
    return active
