"""Error responses declared on routes, so the OpenAPI document tells the whole truth."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

_DESCRIPTIONS = {
    400: "Malformed input (`bad_request`); `details` lists field errors",
    401: "Missing or invalid credentials (`unauthorized`)",
    403: "Not allowed (`forbidden`), e.g. a missing scope or role",
    404: "No such resource in this account (`not_found`)",
    409: "Conflicts with the current state (`conflict`, `idempotency_key_in_use` or a domain code)",
    413: "Request body over the limit (`payload_too_large`)",
    422: "Idempotency-Key reused with a different request (`idempotency_key_reused`)",
    429: "Rate limit exceeded (`rate_limited`); see `Retry-After`",
    502: "WhatsApp (Meta) rejected the request (`meta_error`)",
    503: "The database is unreachable for a moment (`service_unavailable`); see `Retry-After`",
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
        for status in (400, 413, 429, 503, *statuses)
    }


def without_framework_422(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's default 422 "Validation Error": validation failures are 400s here.

    The only 422 left is the one every ``/api/v1`` POST can really answer: an
    Idempotency-Key reused with another body (and its 409 twin while the first runs).
    """
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get("application/json", {})
            if schema.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            if method == "post" and path.startswith("/api/v1/"):
                envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
                content = {"application/json": {"schema": envelope}}
                responses["422"] = {"description": _DESCRIPTIONS[422], "content": content}
                responses.setdefault("409", {"description": _DESCRIPTIONS[409], "content": content})
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return document
