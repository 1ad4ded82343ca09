"""All SQL about conversations and messages. Every query starts from the account, except
the by-wamid lookup: Meta's statuses name only the message, so callers check its account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from wacrm.kit.db import UTCDateTime
from wacrm.kit.upsert import insert_or_ignore
from wacrm.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    MessageStatusUpdate,
)

# Statuses only move forward. ``failed`` sits between sent and delivered: a failure after
# ``sent`` counts, a late failure report for a delivered or read message does not.
STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.RETRYING: 0,
    MessageStatus.UNKNOWN: 0,
    MessageStatus.SENT: 10,
    MessageStatus.FAILED: 15,
    MessageStatus.DELIVERED: 20,
    MessageStatus.READ: 30,
}
_TIME_OF_STATUS = {
    MessageStatus.SENT: Message.sent_at,
    MessageStatus.DELIVERED: Message.delivered_at,
    MessageStatus.READ: Message.read_at,
}


@dataclass(frozen=True)
class MessageRef:
    """Just enough about a message to apply a status to it."""

    id: uuid.UUID
    account_id: uuid.UUID
    conversation_id: uuid.UUID
    direction: str
    wamid: str


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


async def insert_message(
    session: AsyncSession, account_id: uuid.UUID, values: dict[str, Any]
) -> uuid.UUID | None:
    """Store a message; None when its wamid is already stored (a replay or a duplicate)."""
    row = await insert_or_ignore(
        session,
        Message,
        {**values, "account_id": account_id},
        conflict_columns=("wamid",),
        returning=(Message.id,),
    )
    return None if row is None else row[0]


async def record_inbound(
    session: AsyncSession,
    account_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    channel_id: uuid.UUID,
    at: datetime,
) -> None:
    """A new customer message: reopen, count it unread (in SQL, so concurrent messages all
    count), move the 24 h window, and answer from the number the customer last wrote to.
    """
    statement = (
        update(Conversation)
        .where(Conversation.account_id == account_id, Conversation.id == conversation_id)
        .values(
            status=ConversationStatus.OPEN.value,
            unread_count=Conversation.unread_count + 1,
            last_inbound_at=_latest(Conversation.last_inbound_at, at),
            last_message_at=_latest(Conversation.last_message_at, at),
            channel_id=channel_id,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


def _latest(column: InstrumentedAttribute[datetime | None], at: datetime) -> ColumnElement[Any]:
    # An old message replayed late must not move the window backwards.
    moment = literal(at, UTCDateTime())
    return case((or_(column.is_(None), column < moment), moment), else_=column)


async def message_by_wamid(session: AsyncSession, wamid: str) -> MessageRef | None:
    """Global on purpose: a status names only the wamid. The caller checks the account."""
    statement = select(
        Message.id, Message.account_id, Message.conversation_id, Message.direction, Message.wamid
    ).where(Message.wamid == wamid)
    row = (await session.execute(statement)).first()
    if row is None:
        return None
    return MessageRef(row.id, row.account_id, row.conversation_id, row.direction, wamid)


async def advance_status(
    session: AsyncSession,
    account_id: uuid.UUID,
    message_id: uuid.UUID,
    status: MessageStatus,
    *,
    at: datetime,
    error: dict[str, Any] | None = None,
) -> bool:
    """Apply a delivery status to an outbound message, monotonically, in one statement
    (concurrent reports for one message can't interleave). True when the status changed.

    The status's time is kept even when the status itself is stale (a ``delivered`` after
    ``read``), and the earliest report of each wins.
    """
    changes: dict[str, Any] = {"status": status.value}
    if status is MessageStatus.FAILED:
        changes.update(failed_at=at, error=error)
    rank = case(
        {state.value: value for state, value in STATUS_RANK.items()},
        value=Message.status,
        else_=0,
    )
    moved = await session.execute(
        update(Message)
        .where(
            Message.account_id == account_id,
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND.value,
            rank < STATUS_RANK[status],
        )
        .values(changes)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    changed = moved.first() is not None
    column = _TIME_OF_STATUS.get(status)
    if column is not None:
        await session.execute(
            update(Message)
            .where(
                Message.account_id == account_id,
                Message.id == message_id,
                or_(column.is_(None), column > at),
            )
            .values({column: at})
            .execution_options(synchronize_session=False)
        )
    return changed


async def append_status_history(
    session: AsyncSession,
    account_id: uuid.UUID,
    message_id: uuid.UUID,
    *,
    status: str,
    occurred_at: datetime,
    raw: dict[str, Any],
) -> None:
    session.add(
        MessageStatusUpdate(
            account_id=account_id,
            message_id=message_id,
            status=status,
            occurred_at=occurred_at,
            raw=raw,
        )
    )
    await session.flush()
