"""The exception tree. Each class is one problem a user can act on.

NotiflowsDeployError
 +-- UsageError          bad flags or inputs
 +-- ConfigError         notiflows.json missing or broken
 +-- GitError            history or range problems (shallow clone, unknown ref, ...)
 +-- SchemaLoadError     the notiflow JSON Schema could not be loaded
 +-- ApiError            (notiflows_deploy.api.errors) anything the Management API said or failed to say

Only `cli.main` turns these into messages and exit codes; nothing else prints them.
"""

from __future__ import annotations


class NotiflowsDeployError(Exception):
    """Base class. `hint` says how to fix it, in one sentence."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(NotiflowsDeployError):
    pass


class ConfigError(NotiflowsDeployError):
    def __init__(
        self, message: str, *, hint: str = "", file: str | None = None, line: int = 1, column: int = 1
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.column = column


class GitError(NotiflowsDeployError):
    pass


class SchemaLoadError(NotiflowsDeployError):
    pass
