"""All SQL about outbound messages (sending, retrying) and reading one message."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.models import Conversation, Message, MessageStatus, MessageStatusUpdate


async def get_message(
    session: AsyncSession, account_id: uuid.UUID, message_id: uuid.UUID
) -> Message | None:
    statement = select(Message).where(Message.account_id == account_id, Message.id == message_id)
    message: Message | None = (await session.execute(statement)).scalar_one_or_none()
    return message


async def status_history(
    session: AsyncSession, account_id: uuid.UUID, message_id: uuid.UUID
) -> list[MessageStatusUpdate]:
    statement = (
        select(MessageStatusUpdate)
        .where(
            MessageStatusUpdate.account_id == account_id,
            MessageStatusUpdate.message_id == message_id,
        )
        .order_by(MessageStatusUpdate.created_at, MessageStatusUpdate.id)
    )
    return list((await session.execute(statement)).scalars())


async def set_outcome(
    session: AsyncSession,
    message_id: uuid.UUID,
    *,
    status: MessageStatus,
    values: dict[str, Any],
) -> bool:
    """Record a send's outcome, only while the message is still ours to settle (pending):
    a status webhook that got there first is never overwritten."""
    result = await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.PENDING.value)
        .values(status=status.value, **values)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def lock_pending(session: AsyncSession, message_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Of these messages, those still ``pending``: locked (PostgreSQL) until the transaction
    ends, so their outcome is recorded once."""
    statement = (
        select(Message.id)
        .where(Message.id.in_(list(message_ids)), Message.status == MessageStatus.PENDING.value)
        .with_for_update()
    )
    return set((await session.execute(statement)).scalars())


_OUTCOME_COLUMNS = ("status", "attempts", "wamid", "error", "next_attempt_at", "failed_at")
_messages = Message.__table__
assert isinstance(_messages, Table)
_SET_OUTCOME = (
    update(_messages)
    .where(
        _messages.c.id == bindparam("message_id"),
        _messages.c.status == MessageStatus.PENDING.value,
    )
    .values({column: bindparam(f"new_{column}") for column in _OUTCOME_COLUMNS})
)


async def set_outcomes(session: AsyncSession, outcomes: dict[uuid.UUID, dict[str, Any]]) -> None:
    """Record many sends' outcomes (each a value for every column of ``_OUTCOME_COLUMNS``)
    with one executemany, each only while its message is still ``pending``."""
    if outcomes:
        rows = [
            {"message_id": message_id, **{f"new_{k}": values[k] for k in _OUTCOME_COLUMNS}}
            for message_id, values in outcomes.items()
        ]
        await session.execute(_SET_OUTCOME, rows)


async def due_retries(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    statement = (
        select(Message.id)
        .where(
            Message.status == MessageStatus.RETRYING.value,
            Message.next_attempt_at <= now,
        )
        .order_by(Message.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return list((await session.execute(statement)).scalars())


async def claim_retry(session: AsyncSession, message_id: uuid.UUID) -> bool:
    """Take a due retry for this worker: only one claimant can move it back to pending."""
    result = await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.RETRYING.value)
        .values(status=MessageStatus.PENDING.value, next_attempt_at=None)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def mark_stalled(session: AsyncSession, older_than: datetime) -> int:
    """Pending sends whose process died mid-call: Meta may have them, so never re-send."""
    result = await session.execute(
        update(Message)
        .where(
            Message.status == MessageStatus.PENDING.value,
            Message.direction == "outbound",
            Message.updated_at < older_than,
        )
        .values(
            status=MessageStatus.UNKNOWN.value,
            error={"message": "the sending process stopped mid-send; outcome unknown"},
        )
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


async def touch_conversation(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID, at: datetime
) -> None:
    """An outbound message moves the conversation's last activity forward."""
    await session.execute(
        update(Conversation)
        .where(Conversation.account_id == account_id, Conversation.id == conversation_id)
        .values(last_message_at=at)
        .execution_options(synchronize_session=False)
    )


async def touch_conversations(
    session: AsyncSession, account_id: uuid.UUID, conversation_ids: list[uuid.UUID], at: datetime
) -> None:
    """``touch_conversation`` for many, in one UPDATE."""
    if conversation_ids:
        await session.execute(
            update(Conversation)
            .where(
                Conversation.account_id == account_id,
                Conversation.id.in_(sorted(set(conversation_ids))),
            )
            .values(last_message_at=at)
            .execution_options(synchronize_session=False)
        )
