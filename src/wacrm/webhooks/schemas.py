"""Webhook endpoints and deliveries on the wire. The secret is only ever in a `WebhookSecret`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wacrm.kit.text import text_problem
from wacrm.models.webhooks import WebhookAttempt, WebhookEndpoint
from wacrm.webhooks.service import SUBSCRIBABLE_EVENTS, DeliveryView

_EVENTS = (
    f"Non-empty list of: {', '.join(SUBSCRIBABLE_EVENTS)}. Duplicates collapse. "
    "(`webhook.test` needs no subscription: the test endpoint sends it.)"
)
_URL = (
    "Where events are POSTed: an absolute `https://` URL whose host resolves to public "
    "addresses only. No credentials, fragments, whitespace or backslashes. Stored and used "
    "in canonical form (lowercase scheme and host, default port dropped)."
)


def _events(value: list[str]) -> list[str]:
    unknown = [name for name in value if name not in SUBSCRIBABLE_EVENTS]
    if unknown:
        raise ValueError(
            f"unknown event {unknown[0][:64]!r}; known: {', '.join(SUBSCRIBABLE_EVENTS)}"
        )
    return [name for name in SUBSCRIBABLE_EVENTS if name in value]


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value or None


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=4096, description=_URL, examples=["https://example.com/hooks/wacrm"]
    )
    events: list[str] = Field(min_length=1, max_length=32, description=_EVENTS)
    description: str | None = Field(None, max_length=500, description="What the endpoint is for")
    is_active: bool = Field(True, description="Deliver to it (true) or keep it disabled")

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        return _events(value)

    @field_validator("description")
    @classmethod
    def _clean_description(cls, value: str | None) -> str | None:
        return _description(value)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=4096, description=_URL)
    events: list[str] | None = Field(None, min_length=1, max_length=32, description=_EVENTS)
    description: str | None = Field(
        None, max_length=500, description="New description; null clears it"
    )
    is_active: bool | None = Field(
        None,
        description="false disables it (its pending deliveries fail); true enables it and "
        "clears its failure streak and the reason it was disabled",
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _events(value)

    @field_validator("description")
    @classmethod
    def _clean_description(cls, value: str | None) -> str | None:
        return _description(value)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("url", "events", "is_active"):
                if name in data and data[name] is None:
                    raise ValueError(f"{name} cannot be null")
        return data


class WebhookOut(BaseModel):
    id: uuid.UUID = Field(description="Webhook id (sent as `X-Wacrm-Webhook-Id`)")
    url: str = Field(description="Canonical URL events are POSTed to")
    events: list[str] = Field(description="Event types delivered to it")
    description: str | None = Field(description="What the endpoint is for")
    is_active: bool = Field(description="Whether events are delivered to it")
    status: Literal["active", "disabled"] = Field(description="active or disabled")
    disabled_at: datetime | None = Field(description="When it was disabled (UTC)")
    disabled_reason: str | None = Field(
        description="Why: by the API, a 410 Gone answer, or sustained failure"
    )
    consecutive_failures: int = Field(description="Failed attempts since the last success")
    failing_since: datetime | None = Field(description="Start of the current failure streak")
    created_at: datetime = Field(description="When it was registered (UTC)")
    updated_at: datetime = Field(description="When it last changed (UTC)")

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=list(endpoint.events),
            description=endpoint.description,
            is_active=endpoint.is_active,
            status="active" if endpoint.is_active else "disabled",
            disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason,
            consecutive_failures=endpoint.consecutive_failures,
            failing_since=endpoint.failing_since,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookSecret(BaseModel):
    webhook: WebhookOut = Field(description="The webhook")
    secret: str = Field(
        description="Signing secret, `whsec_...`. Shown this once: it cannot be read again."
    )


class AttemptOut(BaseModel):
    number: int = Field(description="1 for the first attempt of this delivery, then 2, ...")
    attempted_at: datetime = Field(description="When the request was made (UTC)")
    succeeded: bool = Field(description="The receiver answered 2xx")
    status_code: int | None = Field(description="HTTP status; null if none came back")
    latency_ms: int = Field(description="Milliseconds from the DNS check to the response read")
    error: str | None = Field(description="Why it failed: status, timeout, connection, blocked")
    response_body: str | None = Field(description="First KiB of the response body")

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls(
            number=attempt.number,
            attempted_at=attempt.attempted_at,
            succeeded=attempt.succeeded,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
            response_body=attempt.response_body,
        )


class DeliveryOut(BaseModel):
    id: uuid.UUID = Field(description="Delivery id (sent as `X-Wacrm-Delivery-Id`)")
    webhook_id: uuid.UUID = Field(description="The webhook it goes to")
    event_id: uuid.UUID = Field(description="The event: the body's `id` and `webhook-id`")
    event_type: str = Field(description="The event type")
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="pending (waiting or in progress), succeeded, or failed (gave up)"
    )
    attempt_count: int = Field(description="Attempts made")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due")
    last_status_code: int | None = Field(description="HTTP status of the last attempt")
    last_error: str | None = Field(description="Error of the last attempt")
    created_at: datetime = Field(description="When the delivery was queued (UTC)")
    completed_at: datetime | None = Field(description="When it succeeded or was given up")
    attempts: list[AttemptOut] = Field(description="Every attempt, oldest first")

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        delivery = view.delivery
        return cls(
            id=delivery.id,
            webhook_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,  # type: ignore[arg-type]
            attempt_count=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            completed_at=delivery.completed_at,
            attempts=[AttemptOut.of(a) for a in view.attempts],
        )
