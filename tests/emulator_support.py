"""Test helpers around the bundled emulator (import from any test: `from emulator_support import ...`)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from notiflows_deploy.emulator import Emulator

TOKEN = "nf_at_test"
PROJECT = "demo"

VALID_PAYLOAD: dict[str, Any] = {
    "name": "Welcome Series",
    "active": True,
    "include_in_preferences": True,
    "steps": [
        {"handle": "trigger", "type": "trigger", "position": 0},
        {
            "handle": "email_1",
            "type": "channel",
            "position": 1,
            "channel_type": "email",
            "channel_handle": "transactional-email",
            "template": {
                "channel_type": "email",
                "data": {"subject": "Welcome!", "content_type": "html", "body": "<p>Hi {{ data.name }}</p>"},
            },
        },
        {"handle": "wait_1", "type": "wait", "position": 2, "settings": {"duration": 1, "duration_unit": "days"}},
        {"handle": "end", "type": "end", "position": 3},
    ],
}


def valid_payload(**changes: Any) -> dict[str, Any]:
    """A deep copy of a valid, publishable payload with top-level `changes` applied."""
    payload = copy.deepcopy(VALID_PAYLOAD)
    payload.update(changes)
    return payload


@contextmanager
def running_emulator(**kwargs: Any) -> Iterator[Emulator]:
    """Start an Emulator on 127.0.0.1 (free port) for the block; defaults token TOKEN, project PROJECT.

    Any Emulator(...) keyword is accepted (tokens, projects, data_file, faults, ...).
    """
    kwargs.setdefault("tokens", [TOKEN])
    kwargs.setdefault("projects", [PROJECT])
    emulator = Emulator(**kwargs)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def api_session(emulator: Emulator, token: str | None = None) -> requests.Session:
    """A requests.Session that sends the emulator's (first) token."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token or emulator.token}"
    return session
