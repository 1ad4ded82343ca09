"""Builders for the conversations tests: conversations and messages with chosen times."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.contacts import repository as contacts_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.models import Conversation, Direction, Message, MessageStatus

CONVERSATIONS = "/api/v1/conversations"


async def create_conversation(
    db: AsyncSession,
    account_id: uuid.UUID,
    phone: str,
    *,
    created_at: datetime | None = None,
    **fields: Any,
) -> Conversation:
    """The number's contact and conversation, with any conversation columns set."""
    contact, _ = await contacts_repository.find_or_create_by_phone(db, account_id, phone)
    conversation, _ = await conversations_repository.find_or_create(
        db, account_id, contact.id, channel_id=None
    )
    for column, value in {**fields, **({"created_at": created_at} if created_at else {})}.items():
        setattr(conversation, column, value)
    await db.commit()
    return conversation


async def add_message(
    db: AsyncSession,
    conversation: Conversation,
    created_at: datetime,
    *,
    direction: Direction = Direction.INBOUND,
    status: MessageStatus = MessageStatus.RECEIVED,
    **fields: Any,
) -> Message:
    message = Message(
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        direction=direction.value,
        type="text",
        content={"body": f"at {created_at.isoformat()}"},
        status=status.value,
        created_at=created_at,
        **fields,
    )
    db.add(message)
    await db.commit()
    return message
