"""Helpers for webhook tests: fake DNS, endpoints through the API, a pump driven to completion."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from tests.webhooks.receivers import Received
from wacrm.events.service import EventType, record_event
from wacrm.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from wacrm.webhooks.tasks import WebhookPump
from wacrm.webhooks.transport import WebhookSender

PUBLIC_IP = "93.184.215.14"
FAST = {
    "webhooks_allow_private_targets": True,
    "webhooks_retry_schedule_seconds": [0.0, 0.05, 0.05],
    "webhooks_timeout_seconds": 1.0,
    "webhooks_lease_seconds": 3.0,
    "webhooks_concurrency": 16,
    "worker_poll_seconds": 0.02,
}


class FakeDns:
    """``getaddrinfo`` for names tests make up; a name it does not know does not resolve."""

    def __init__(self, names: dict[str, Sequence[str]] | None = None) -> None:
        self.names = {"example.com": [PUBLIC_IP], **(names or {})}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int, *, type: int = 0) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in self.names[host]
        ]


async def create_webhook(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    url: str,
    events: Sequence[str] = ("contact.created",),
    **extra: Any,
) -> tuple[str, str]:
    """Register through the API; returns (webhook id, secret)."""
    response = await client.post(
        "/api/v1/webhooks", headers=headers, json={"url": url, "events": list(events), **extra}
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return data["webhook"]["id"], data["secret"]


async def record(
    db: AsyncSession,
    account_id: uuid.UUID,
    event_type: EventType = EventType.CONTACT_CREATED,
    data: dict[str, Any] | None = None,
) -> str:
    event = await record_event(db, account_id, event_type, data or {"contact_id": "c1"})
    await db.commit()
    return str(event.id)


def make_pump(app: Any, **sender_options: Any) -> WebhookPump:
    settings = app.state.settings
    sender = WebhookSender(
        allow_private=settings.webhooks_allow_private_targets,
        timeout=settings.webhooks_timeout_seconds,
        max_connections=settings.webhooks_concurrency,
        **sender_options,
    )
    return WebhookPump(app.state.database, settings, sender)


async def pump_until(
    pump: WebhookPump, done: Callable[[], Awaitable[bool]], seconds: float = 10.0
) -> None:
    """Run delivery rounds until ``done()`` or the deadline (then fail)."""
    deadline = time.monotonic() + seconds
    while not await done():
        assert time.monotonic() < deadline, "deliveries did not settle in time"
        if await pump.run_round() == 0:
            await asyncio.sleep(0.02)


def settled(app: Any) -> Callable[[], Awaitable[bool]]:
    """True once no delivery is pending."""

    async def check() -> bool:
        async with app.state.database.sessions() as session:
            statuses = (await session.execute(select(WebhookDelivery.status))).scalars().all()
        return bool(statuses) and "pending" not in statuses

    return check


async def deliveries(app: Any) -> list[WebhookDelivery]:
    async with app.state.database.sessions() as session:
        statement = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        return list((await session.execute(statement)).scalars())


async def attempts(app: Any) -> list[WebhookAttempt]:
    async with app.state.database.sessions() as session:
        statement = select(WebhookAttempt).order_by(WebhookAttempt.attempted_at)
        return list((await session.execute(statement)).scalars())


async def endpoint(app: Any, webhook_id: str) -> WebhookEndpoint:
    async with app.state.database.sessions() as session:
        found = await session.get(WebhookEndpoint, uuid.UUID(webhook_id))
        assert found is not None
        return found


def verify_both(secret: str, request: Received) -> dict[str, Any]:
    """Check a request the way the README tells receivers to; returns the parsed body."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    fields = dict(part.split("=", 1) for part in request.headers["x-wacrm-signature"].split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    assert abs(time.time() - timestamp) < 300
    assert request.headers["webhook-id"] == payload["id"]
    assert request.headers["x-wacrm-event"] == payload["event"]
    return payload


def public_only(app: Any) -> None:
    """Production rules for the rest of the test: https and public addresses only."""
    app.state.settings = app.state.settings.model_copy(
        update={"webhooks_allow_private_targets": False}
    )
