"""Recording domain events in the caller's transaction: committed together or not at all."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.clock import utcnow
from wacrm.models import Event


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
    return event
