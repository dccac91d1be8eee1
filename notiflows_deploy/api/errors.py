"""Typed errors of the Management API client.

ApiError (carries code, message, status, request_id, details; never the token)
 +-- TransportError        no usable HTTP answer (connection refused/reset, DNS)
 |    +-- ApiTimeoutError  connect or read timeout
 +-- BadResponseError      an answer that is not the documented envelope/JSON (proxy HTML, empty body)
 +-- DraftChangedError     publish refused by the client: the draft is no longer the one pushed
 +-- HttpStatusError       a documented error envelope
      +-- AuthError              401 unauthenticated
      +-- ForbiddenError         403
      +-- NotFoundError          404 not_found
      +-- ConflictError          409 conflict (expected_sha no longer current)
      +-- ValidationFailedError  422 validation_failed; `fields` = details.fields
      +-- RateLimitedError       429 rate_limited; `retry_after` seconds when known
      +-- ServerError            5xx
"""

from __future__ import annotations

from typing import Any

from notiflows_deploy.errors import NotiflowsDeployError


class ApiError(NotiflowsDeployError):
    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        method: str = "",
        url: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status
        self.request_id = request_id
        self.details = details or {}
        self.method = method
        self.url = url

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None or self.code:
            parts.append(f"[{self.status or '-'} {self.code or '-'}]")
        if self.method and self.url:
            parts.append(f"{self.method} {self.url}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        text = " ".join(parts)
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "request_id": self.request_id,
            "details": self.details,
        }


class TransportError(ApiError):
    pass


class ApiTimeoutError(TransportError):
    pass


class BadResponseError(ApiError):
    pass


class HttpStatusError(ApiError):
    pass


class DraftChangedError(ApiError):
    """A publish with `expected_sha` found another draft on the server (or none): nothing was published.

    Raised by the client itself, not from an HTTP answer (code ``draft_changed``). `details` carries
    ``expected_sha``, ``current_sha`` (None when the notiflow is gone) and ``changed_by`` (a name).
    """

    @property
    def current_sha(self) -> str | None:
        value = self.details.get("current_sha")
        return value if isinstance(value, str) else None

    @property
    def changed_by(self) -> str | None:
        value = self.details.get("changed_by")
        return value if isinstance(value, str) and value else None


class AuthError(HttpStatusError):
    pass


class ForbiddenError(HttpStatusError):
    pass


class NotFoundError(HttpStatusError):
    pass


class ConflictError(HttpStatusError):
    pass


class ValidationFailedError(HttpStatusError):
    @property
    def fields(self) -> list[dict[str, Any]]:
        value = self.details.get("fields")
        return [f for f in value if isinstance(f, dict)] if isinstance(value, list) else []


class RateLimitedError(HttpStatusError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(HttpStatusError):
    pass
