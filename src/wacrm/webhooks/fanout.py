"""One delivery per (event, subscribed active endpoint), written with the events themselves.

Called by `wacrm.events.service` in the transaction that records the events, so an event
and its deliveries commit together or not at all: a process dying after the commit leaves
deliveries that a worker will make, never an event nobody was told about.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.clock import utcnow
from wacrm.kit.db import new_id
from wacrm.kit.upsert import insert_many
from wacrm.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint


async def create_deliveries(
    session: AsyncSession, account_id: uuid.UUID, events: Sequence[Mapping[str, Any]]
) -> int:
    """Queue ``events`` (rows with their ``id`` and ``type``) for every active endpoint of the
    account subscribed to their type."""
    if not events:
        return 0
    statement = select(WebhookEndpoint.id, WebhookEndpoint.events).where(
        WebhookEndpoint.account_id == account_id, WebhookEndpoint.is_active.is_(True)
    )
    if session.get_bind().dialect.name == "postgresql":
        # FOR KEY SHARE until commit: an endpoint being deleted is either waited for (and
        # then not seen) or kept until our deliveries are in; never a delivery pointing at
        # an endpoint that is gone (a foreign-key error, a 500 for whoever caused the event).
        statement = statement.order_by(WebhookEndpoint.id).with_for_update(
            read=True, key_share=True
        )
    endpoints = (await session.execute(statement)).all()
    if not endpoints:
        return 0
    now = utcnow()
    rows = [
        delivery_row(account_id, endpoint_id, event["id"], event["type"], now)
        for event in events
        for endpoint_id, subscribed in endpoints
        if event["type"] in subscribed
    ]
    await insert_many(session, WebhookDelivery, rows)
    return len(rows)


def delivery_row(
    account_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    now: datetime,
) -> dict[str, Any]:
    """A new delivery, due at once."""
    return {
        "id": new_id(),
        "account_id": account_id,
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event_type": event_type,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
