"""Error responses declared on routes, so the OpenAPI document tells the whole truth."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

_DESCRIPTIONS = {
    400: "Malformed input (`bad_request`); `details` lists field errors",
    401: "Missing or invalid credentials (`unauthorized`)",
    403: "Not allowed (`forbidden`), e.g. a missing scope or role",
    404: "No such resource in this account (`not_found`)",
    409: "Conflicts with the current state (`conflict` or a domain code)",
    413: "Request body over the limit (`payload_too_large`)",
    422: "Idempotency key reused with a different body (`idempotency_key_reused`)",
    429: "Rate limit exceeded (`rate_limited`); see `Retry-After`",
    502: "WhatsApp (Meta) rejected the request (`meta_error`)",
}


class ErrorDetail(BaseModel):
    field: str | None = Field(None, description="The input field the problem is about")
    message: str = Field(description="What is wrong with it")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code")
    message: str = Field(description="Human-readable explanation")
    details: list[dict[str, Any]] | None = Field(None, description="Field errors, when any")


class ErrorEnvelope(BaseModel):
    error: ErrorBody = Field(description="The error")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        for status in (400, 413, 429, *statuses)
    }


def without_framework_422(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's default 422 "Validation Error": validation failures are 400s here."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return document
