"""All SQL about conversations and their messages; every query starts from the account.
Delivery statuses of outbound messages are in ``status_repository``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.db import UTCDateTime
from wacrm.kit.pagination import Page, Paginator
from wacrm.kit.upsert import in_chunks, insert_many_or_ignore, insert_or_ignore, table_of
from wacrm.models import (
    Conversation,
    ConversationStatus,
    Message,
)


async def get_by_contact(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID
) -> Conversation | None:
    statement = select(Conversation).where(
        Conversation.account_id == account_id, Conversation.contact_id == contact_id
    )
    conversation: Conversation | None = (await session.execute(statement)).scalar_one_or_none()
    return conversation


async def find_or_create(
    session: AsyncSession,
    account_id: uuid.UUID,
    contact_id: uuid.UUID,
    *,
    channel_id: uuid.UUID | None,
) -> tuple[Conversation, bool]:
    """The contact's one conversation in the account, created (open) if missing. Race-safe."""
    conversation = await get_by_contact(session, account_id, contact_id)
    if conversation is not None:
        return conversation, False
    inserted = await insert_or_ignore(
        session,
        Conversation,
        {"account_id": account_id, "contact_id": contact_id, "channel_id": channel_id},
        conflict_columns=("account_id", "contact_id"),
        returning=(Conversation.id,),
    )
    conversation = await get_by_contact(session, account_id, contact_id)
    if conversation is None:  # pragma: no cover - deleted between the insert and this read
        raise LookupError("conversation vanished while being created")
    return conversation, inserted is not None


async def get(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    statement = select(Conversation).where(
        Conversation.account_id == account_id, Conversation.id == conversation_id
    )
    conversation: Conversation | None = (await session.execute(statement)).scalar_one_or_none()
    return conversation


# A conversation's latest activity: its last message, or its start while it has none.
_LATEST_ACTIVITY = func.coalesce(
    Conversation.last_message_at, Conversation.created_at, type_=UTCDateTime()
)


def latest_activity(conversation: Conversation) -> datetime:
    return conversation.last_message_at or conversation.created_at


async def list_page(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    status: ConversationStatus | None = None,
    contact_id: uuid.UUID | None = None,
    by_activity: bool = False,
) -> tuple[list[Conversation], str | None]:
    """Newest first: by when they started, or (``by_activity``) by their latest message."""
    statement = select(Conversation).where(Conversation.account_id == account_id)
    if status is not None:
        statement = statement.where(Conversation.status == status.value)
    if contact_id is not None:
        statement = statement.where(Conversation.contact_id == contact_id)
    moment = _LATEST_ACTIVITY if by_activity else Conversation.created_at
    statement = paginator.apply(statement, moment, Conversation.id, page)
    rows = (await session.execute(statement)).scalars().all()
    return paginator.split(rows, page, latest_activity if by_activity else None)


async def mark_read(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> None:
    """No customer message left unread (a no-op, with no write, when there was none)."""
    await session.execute(
        update(Conversation)
        .where(
            Conversation.account_id == account_id,
            Conversation.id == conversation_id,
            Conversation.unread_count != 0,
        )
        .values(unread_count=0)
        .execution_options(synchronize_session=False)
    )


async def list_messages(
    session: AsyncSession,
    account_id: uuid.UUID,
    conversation_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
) -> tuple[list[Message], str | None]:
    """A page of the conversation's messages, newest first."""
    statement = select(Message).where(
        Message.account_id == account_id, Message.conversation_id == conversation_id
    )
    statement = paginator.apply(statement, Message.created_at, Message.id, page)
    rows = (await session.execute(statement)).scalars().all()
    return paginator.split(rows, page)


# --- set-based writes, for inbound webhook batches -------------------------------------------


# The statements below run for every inbound batch: built once, since building a statement
# costs more than running it.
_BY_CONTACTS = select(Conversation.id, Conversation.contact_id, Conversation.status).where(
    Conversation.account_id == bindparam("account_id"),
    Conversation.contact_id.in_(bindparam("contact_ids", expanding=True)),
)


@dataclass(frozen=True)
class ConversationRef:
    """What a thread needs of a conversation found or created for a contact."""

    id: uuid.UUID
    contact_id: uuid.UUID
    status: str


async def by_contacts(
    session: AsyncSession, account_id: uuid.UUID, contact_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, ConversationRef]:
    """The conversations of these contacts, by contact."""
    if not contact_ids:
        return {}
    found: dict[uuid.UUID, ConversationRef] = {}
    for chunk in in_chunks(contact_ids):
        parameters = {"account_id": account_id, "contact_ids": chunk}
        for row in (await session.execute(_BY_CONTACTS, parameters)).all():
            found[row.contact_id] = ConversationRef(row.id, row.contact_id, row.status)
    return found


async def find_or_create_many(
    session: AsyncSession,
    account_id: uuid.UUID,
    contact_ids: Collection[uuid.UUID],
    *,
    channel_id: uuid.UUID | None,
    new_contact_ids: Collection[uuid.UUID] = (),
) -> tuple[dict[uuid.UUID, ConversationRef], set[uuid.UUID]]:
    """``find_or_create`` for many contacts: one lookup, one INSERT of the missing (open)
    conversations, race-safe. Returns each contact's conversation, and the contacts whose
    conversation this call created.

    ``new_contact_ids`` were created by this transaction: no other transaction can have
    given them a conversation yet, so they are not looked up.
    """
    fresh = set(new_contact_ids)
    found = await by_contacts(session, account_id, [c for c in contact_ids if c not in fresh])
    missing = sorted(c for c in set(contact_ids) if c not in found)
    inserted = await insert_many_or_ignore(
        session,
        Conversation,
        [
            {"account_id": account_id, "contact_id": contact_id, "channel_id": channel_id}
            for contact_id in missing
        ],
        conflict_columns=("account_id", "contact_id"),
        returning=("id", "contact_id", "status"),
    )
    created = {row.contact_id for row in inserted}
    for row in inserted:
        found[row.contact_id] = ConversationRef(row.id, row.contact_id, row.status)
    lost = [contact_id for contact_id in missing if contact_id not in created]
    if lost:
        found.update(await by_contacts(session, account_id, lost))
    return found, created


async def insert_messages(
    session: AsyncSession, account_id: uuid.UUID, rows: list[dict[str, Any]]
) -> dict[str, uuid.UUID]:
    """Store messages (each with a wamid, all with the same keys) in one INSERT; returns
    wamid → id of those stored now. A wamid already stored, or repeated in ``rows``, is
    skipped: replays and concurrent duplicates store one message.
    """
    inserted = await insert_many_or_ignore(
        session,
        Message,
        [{**row, "account_id": account_id} for row in sorted(rows, key=lambda r: r["wamid"])],
        conflict_columns=("wamid",),
        returning=("id", "wamid"),
    )
    return {row.wamid: row.id for row in inserted}


@dataclass(frozen=True)
class InboundArrival:
    """New customer messages in one conversation: how many, and the latest one's time."""

    conversation_id: uuid.UUID
    count: int
    latest_at: datetime


_conversations = table_of(Conversation).c
_arrived_at = bindparam("arrived_at", type_=UTCDateTime())


def _latest_arrival(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((or_(column.is_(None), column < _arrived_at), _arrived_at), else_=column)


# ``record_inbound`` for one conversation per parameter set, run as one executemany.
_RECORD_ARRIVALS = (
    update(table_of(Conversation))
    .where(
        _conversations.account_id == bindparam("account"),
        _conversations.id == bindparam("conversation"),
    )
    .values(
        status=ConversationStatus.OPEN.value,
        unread_count=_conversations.unread_count + bindparam("arrived"),
        last_inbound_at=_latest_arrival(_conversations.last_inbound_at),
        last_message_at=_latest_arrival(_conversations.last_message_at),
        # The number the customer wrote to last, by the messages' own times.
        channel_id=case(
            (
                or_(
                    _conversations.last_inbound_at.is_(None),
                    _conversations.last_inbound_at <= _arrived_at,
                ),
                bindparam("channel", type_=_conversations.channel_id.type),
            ),
            else_=_conversations.channel_id,
        ),
    )
)


async def record_inbound_many(
    session: AsyncSession,
    account_id: uuid.UUID,
    arrivals: list[InboundArrival],
    *,
    channel_id: uuid.UUID,
) -> None:
    """``record_inbound`` for several conversations in one round trip: reopen, add each
    one's new messages to its unread count in SQL, move its window and its number (to
    ``channel_id``) unless it already saw a later message.

    In id order, so that concurrent batches lock shared conversations in one order.
    """
    if not arrivals:
        return
    parameters = [
        {
            "account": account_id,
            "conversation": arrival.conversation_id,
            "arrived": arrival.count,
            "arrived_at": arrival.latest_at,
            "channel": channel_id,
        }
        for arrival in sorted(arrivals, key=lambda a: a.conversation_id)
    ]
    await session.execute(_RECORD_ARRIVALS, parameters)
