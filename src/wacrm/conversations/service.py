"""Reading conversations (with their contact embedded) and a conversation's messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.contacts import repository as contacts_repository
from wacrm.contacts.service import ContactView, contact_views
from wacrm.conversations import repository
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import NotFound
from wacrm.kit.pagination import Page, Paginator
from wacrm.models import Conversation, ConversationStatus, Message

# WhatsApp's customer-service window: free-form messages are allowed this long after the
# customer last wrote; afterwards only templates.
SERVICE_WINDOW = timedelta(hours=24)


def service_window_open(last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    """True while the customer's last message is less than 24 hours old."""
    if last_inbound_at is None:
        return False
    return (now or utcnow()) - last_inbound_at < SERVICE_WINDOW


@dataclass(frozen=True)
class ConversationView:
    conversation: Conversation
    contact: ContactView
    service_window_open: bool


async def _views(
    session: AsyncSession, account_id: uuid.UUID, conversations: list[Conversation]
) -> list[ConversationView]:
    contacts = await contacts_repository.get_many(
        session, account_id, {c.contact_id for c in conversations}
    )
    views = {
        view.contact.id: view
        for view in await contact_views(session, account_id, list(contacts.values()))
    }
    now = utcnow()
    return [
        ConversationView(c, views[c.contact_id], service_window_open(c.last_inbound_at, now))
        for c in conversations
    ]


async def _get_or_404(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await repository.get(session, account_id, conversation_id)
    if conversation is None:
        raise NotFound("Conversation")
    return conversation


async def list_conversations(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    status: ConversationStatus | None = None,
    contact_id: uuid.UUID | None = None,
    by_activity: bool = False,
) -> tuple[list[ConversationView], str | None]:
    """A page of the account's conversations, each with its contact: the newest first, or
    (``by_activity``, the inbox) the one with the latest message first."""
    conversations, next_cursor = await repository.list_page(
        session,
        account_id,
        paginator,
        page,
        status=status,
        contact_id=contact_id,
        by_activity=by_activity,
    )
    return await _views(session, account_id, conversations), next_cursor


async def get_conversation(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> ConversationView:
    conversation = await _get_or_404(session, account_id, conversation_id)
    return (await _views(session, account_id, [conversation]))[0]


async def conversation_of_contact(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID
) -> Conversation | None:
    """The contact's one conversation, if anyone has written yet."""
    return await repository.get_by_contact(session, account_id, contact_id)


async def mark_read(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> None:
    """Someone who can answer has seen the conversation: nothing in it is unread any more."""
    await repository.mark_read(session, account_id, conversation_id)


async def list_messages(
    session: AsyncSession,
    account_id: uuid.UUID,
    conversation_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
) -> tuple[list[Message], str | None]:
    """A page of the conversation's messages, newest first; 404 for another account's."""
    await _get_or_404(session, account_id, conversation_id)
    return await repository.list_messages(session, account_id, conversation_id, paginator, page)
