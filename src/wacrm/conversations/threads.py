"""A customer's thread: their contact and their one conversation, created on first contact.

Shared by everything that starts talking to a number (inbound messages, sends,
broadcasts), so ``contact.created`` and ``conversation.created`` are emitted exactly once
and in the same transaction as the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.contacts import repository as contacts_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.events.service import EventBatch, EventType, record_event
from wacrm.models import Contact, Conversation


@dataclass(frozen=True)
class Thread:
    contact: Contact
    contact_created: bool
    conversation: Conversation
    conversation_created: bool


class ContactFields(Protocol):
    """What a contact event needs: a ``Contact`` row, or a lighter ``PhoneContact``."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def phone(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def profile_name(self) -> str | None: ...


def contact_event_data(contact: ContactFields, source: str) -> dict[str, object]:
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
        created = _conversation_event_data(
            conversation.id, contact.id, channel_id, conversation.status
        )
        await record_event(session, account_id, EventType.CONVERSATION_CREATED, created)
    return Thread(contact, contact_created, conversation, conversation_created)


def _conversation_event_data(
    conversation_id: uuid.UUID, contact_id: uuid.UUID, channel_id: uuid.UUID | None, status: str
) -> dict[str, object]:
    return {
        "conversation_id": str(conversation_id),
        "contact_id": str(contact_id),
        "channel_id": str(channel_id) if channel_id else None,
        "status": status,
    }


@dataclass(frozen=True)
class ThreadRef:
    """A customer's thread as ``open_threads`` finds or creates it: just the ids."""

    phone: str
    contact_id: uuid.UUID
    conversation_id: uuid.UUID


async def open_threads(
    session: AsyncSession,
    account_id: uuid.UUID,
    profile_names: dict[str, str | None],
    *,
    channel_id: uuid.UUID | None,
    source: str,
    events: EventBatch,
) -> dict[str, ThreadRef]:
    """``open_thread`` for many numbers (E.164 → WhatsApp profile name, or None) at once.

    A lookup and at most one INSERT per table, whatever the count; the creation events go
    into ``events``, which the caller records in the same transaction. A known contact's
    profile name follows WhatsApp's.
    """
    contacts, contacts_created = await contacts_repository.find_or_create_many_by_phone(
        session, account_id, profile_names
    )
    for phone in profile_names:
        contact = contacts[phone]
        profile_name = profile_names[phone]
        if phone in contacts_created:
            events.add(EventType.CONTACT_CREATED, contact_event_data(contact, source))
        elif profile_name and profile_name != contact.profile_name:
            await contacts_repository.set_profile_name(
                session, account_id, contact.id, profile_name
            )
    new_contact_ids = {contacts[phone].id for phone in contacts_created}
    conversations, conversations_created = await conversations_repository.find_or_create_many(
        session,
        account_id,
        [contact.id for contact in contacts.values()],
        channel_id=channel_id,
        new_contact_ids=new_contact_ids,
    )
    threads: dict[str, ThreadRef] = {}
    for phone in profile_names:
        contact_id = contacts[phone].id
        conversation = conversations[contact_id]
        if contact_id in conversations_created:
            data = _conversation_event_data(
                conversation.id, contact_id, channel_id, conversation.status
            )
            events.add(EventType.CONVERSATION_CREATED, data)
        threads[phone] = ThreadRef(phone, contact_id, conversation.id)
    return threads
