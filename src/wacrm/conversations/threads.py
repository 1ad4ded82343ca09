"""A customer's thread: their contact and their one conversation, created on first contact.

Shared by everything that starts talking to a number (inbound messages, sends,
broadcasts), so ``contact.created`` and ``conversation.created`` are emitted exactly once
and in the same transaction as the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.contacts import repository as contacts_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.events.service import EventType, record_event
from wacrm.models import Contact, Conversation


@dataclass(frozen=True)
class Thread:
    contact: Contact
    contact_created: bool
    conversation: Conversation
    conversation_created: bool


def contact_event_data(contact: Contact, source: str) -> dict[str, object]:
    return {
        "contact_id": str(contact.id),
        "phone": contact.phone,
        "name": contact.name,
        "profile_name": contact.profile_name,
        "source": source,
    }


async def open_thread(
    session: AsyncSession,
    account_id: uuid.UUID,
    phone: str,
    *,
    channel_id: uuid.UUID | None,
    source: str,
    profile_name: str | None = None,
) -> Thread:
    """Find or create the contact (exact E.164) and its conversation, emitting events once."""
    contact, contact_created = await contacts_repository.find_or_create_by_phone(
        session, account_id, phone, profile_name=profile_name
    )
    if contact_created:
        data = contact_event_data(contact, source)
        await record_event(session, account_id, EventType.CONTACT_CREATED, data)
    elif profile_name:
        await contacts_repository.set_profile_name(session, account_id, contact.id, profile_name)
    conversation, conversation_created = await conversations_repository.find_or_create(
        session, account_id, contact.id, channel_id=channel_id
    )
    if conversation_created:
        created = {
            "conversation_id": str(conversation.id),
            "contact_id": str(contact.id),
            "channel_id": str(channel_id) if channel_id else None,
            "status": conversation.status,
        }
        await record_event(session, account_id, EventType.CONVERSATION_CREATED, created)
    return Thread(contact, contact_created, conversation, conversation_created)
