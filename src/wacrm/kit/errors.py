"""The one error type of the service, and the envelope every error is rendered in."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An expected failure: it carries its HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.code, self.message, self.details)


def error_envelope(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "Missing or invalid credentials.") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class SessionRequired(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "Log in first.") -> None:
        super().__init__(message)


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"

    def __init__(self, what: str = "Resource") -> None:
        super().__init__(f"{what} not found.")


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class RateLimited(AppError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(AppError):
    """A dependency is down for a moment (the database): retry soon."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def field_error(field: str, message: str) -> BadRequest:
    """A 400 about one input field, in the same shape as validation errors."""
    return BadRequest(f"Invalid {field}: {message}", details=[{"field": field, "message": message}])
