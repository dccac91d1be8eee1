"""The bundled notiflow JSON Schema and the store that decides which schema a file is checked with."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_URL = "https://notiflows.com/schemas/notiflow.json"
SCHEMA_FILE = "notiflow.schema.json"


@lru_cache(maxsize=1)
def _bundled_text() -> str:
    return resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def bundled_schema() -> dict[str, Any]:
    """A fresh copy of the schema shipped with this package."""
    value: dict[str, Any] = json.loads(_bundled_text())
    return value


__all__ = ["SCHEMA_URL", "bundled_schema"]
