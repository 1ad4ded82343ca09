"""Recording domain events in the caller's transaction: committed together or not at all."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.clock import utcnow
from wacrm.kit.db import new_id
from wacrm.kit.upsert import insert_many
from wacrm.models import Event
from wacrm.webhooks.fanout import create_deliveries

_TICK = timedelta(microseconds=1)


class EventType(StrEnum):
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_STATUS_UPDATED = "message.status_updated"
    CONVERSATION_CREATED = "conversation.created"
    CONTACT_CREATED = "contact.created"
    BROADCAST_COMPLETED = "broadcast.completed"
    WEBHOOK_TEST = "webhook.test"


async def record_event(
    session: AsyncSession, account_id: uuid.UUID, event_type: EventType, data: dict[str, Any]
) -> Event:
    event = Event(account_id=account_id, type=event_type.value, data=data, occurred_at=utcnow())
    session.add(event)
    await session.flush()
    await create_deliveries(session, account_id, [{"id": event.id, "type": event.type}])
    return event


async def record_events(
    session: AsyncSession,
    account_id: uuid.UUID,
    events: Sequence[tuple[EventType, dict[str, Any]]],
) -> None:
    """Record many events of one account with one INSERT, in the order given.

    Their ``occurred_at`` rise by a microsecond each, so that ordering by time keeps the
    order they happened in (a contact's creation before its first message).
    """
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "account_id": account_id,
            "type": event_type.value,
            "data": data,
            "occurred_at": now + n * _TICK,
        }
        for n, (event_type, data) in enumerate(events)
    ]
    await insert_many(session, Event, rows)
    await create_deliveries(session, account_id, rows)


class EventBatch:
    """Events gathered while applying a batch, then recorded with one INSERT (``record``)."""

    def __init__(self, account_id: uuid.UUID) -> None:
        self.account_id = account_id
        self.events: list[tuple[EventType, dict[str, Any]]] = []

    def add(self, event_type: EventType, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))

    async def record(self, session: AsyncSession) -> None:
        if self.events:
            await record_events(session, self.account_id, self.events)
            self.events = []
