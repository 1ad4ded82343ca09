"""SQL of the broadcasts API: every query starts from the caller's account.

The send queue's SQL (claiming, settling, completing) is in ``queue_repository``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.pagination import Page, Paginator
from wacrm.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Message,
    MessageStatus,
    RecipientStatus,
)

Recipient = BroadcastRecipient
ACTIVE = (BroadcastStatus.QUEUED.value, BroadcastStatus.SENDING.value)
UNSETTLED = (RecipientStatus.PENDING.value, RecipientStatus.SENDING.value)


def effective_status(recipient_status: str, message_status: str | None) -> str:
    """What happened to a recipient: its message's delivery status once it has one."""
    if message_status is None or message_status == MessageStatus.PENDING:
        if message_status is not None and recipient_status == RecipientStatus.SENT:
            return RecipientStatus.SENDING.value  # the retry job is sending it again now
        return recipient_status
    return message_status


def _effective_status_sql() -> ColumnElement[str]:
    """``effective_status`` in SQL, for filtering recipients by it."""
    unsent = or_(Message.status.is_(None), Message.status == MessageStatus.PENDING.value)
    retried_now = and_(
        Message.status == MessageStatus.PENDING.value, Recipient.status == RecipientStatus.SENT
    )
    return case(
        (retried_now, RecipientStatus.SENDING.value),
        (unsent, Recipient.status),
        else_=Message.status,
    )


@dataclass
class BroadcastCounts:
    """Recipients by what happened to them; sent ⊇ delivered ⊇ read (Meta's statuses)."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0
    cancelled: int = 0

    def add(self, status: str, count: int) -> None:
        if status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ):
            self.sent += count
        if status in (MessageStatus.DELIVERED, MessageStatus.READ):
            self.delivered += count
        if status == MessageStatus.READ:
            self.read += count
        if status == MessageStatus.FAILED:
            self.failed += count
        elif status == MessageStatus.UNKNOWN:
            self.unknown += count
        elif status == RecipientStatus.CANCELLED:
            self.cancelled += count
        elif status in (*UNSETTLED, MessageStatus.RETRYING):
            self.pending += count

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RecipientRow:
    id: uuid.UUID
    phone: str
    params: list[str]
    status: str
    message_id: uuid.UUID | None
    wamid: str | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    updated_at: datetime


async def insert_recipients(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """All recipients of a broadcast in one executemany."""
    if rows:
        await session.execute(insert(Recipient), list(rows))


async def get(
    session: AsyncSession, account_id: uuid.UUID, broadcast_id: uuid.UUID
) -> Broadcast | None:
    statement = select(Broadcast).where(
        Broadcast.account_id == account_id, Broadcast.id == broadcast_id
    )
    broadcast: Broadcast | None = (await session.execute(statement)).scalar_one_or_none()
    return broadcast


async def list_page(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    status: BroadcastStatus | None,
) -> tuple[list[Broadcast], str | None]:
    statement = select(Broadcast).where(Broadcast.account_id == account_id)
    if status is not None:
        statement = statement.where(Broadcast.status == status.value)
    statement = paginator.apply(statement, Broadcast.created_at, Broadcast.id, page)
    rows = (await session.execute(statement)).scalars().all()
    return paginator.split(rows, page)


async def counts(
    session: AsyncSession, account_id: uuid.UUID, broadcast_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, BroadcastCounts]:
    """Counts computed now from the recipients and their messages' current status."""
    found = {broadcast_id: BroadcastCounts() for broadcast_id in broadcast_ids}
    if not found:
        return found
    statement = (
        select(Recipient.broadcast_id, Recipient.status, Message.status, func.count(Recipient.id))
        .outerjoin(Message, Message.id == Recipient.message_id)
        .where(Recipient.account_id == account_id, Recipient.broadcast_id.in_(list(found)))
        .group_by(Recipient.broadcast_id, Recipient.status, Message.status)
    )
    for broadcast_id, recipient_status, message_status, count in await session.execute(statement):
        found[broadcast_id].add(effective_status(recipient_status, message_status), count)
    return found


async def list_recipients(
    session: AsyncSession,
    account_id: uuid.UUID,
    broadcast_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    status: str | None,
) -> tuple[list[RecipientRow], str | None]:
    statement = (
        select(
            Recipient.id,
            Recipient.phone,
            Recipient.params,
            Recipient.status,
            Recipient.message_id,
            Recipient.error,
            Recipient.attempts,
            Recipient.created_at,
            Recipient.updated_at,
            Message.status.label("message_status"),
            Message.wamid,
            Message.error.label("message_error"),
        )
        .outerjoin(Message, Message.id == Recipient.message_id)
        .where(Recipient.account_id == account_id, Recipient.broadcast_id == broadcast_id)
    )
    if status is not None:
        statement = statement.where(_effective_status_sql() == status)
    statement = paginator.apply(statement, Recipient.created_at, Recipient.id, page)
    rows, next_cursor = paginator.split((await session.execute(statement)).all(), page)
    return [
        RecipientRow(
            id=row.id,
            phone=row.phone,
            params=list(row.params or []),
            status=effective_status(row.status, row.message_status),
            message_id=row.message_id,
            wamid=row.wamid,
            error=row.message_error or row.error,
            attempts=row.attempts,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ], next_cursor


async def mark_cancelled(
    session: AsyncSession, account_id: uuid.UUID, broadcast_id: uuid.UUID, now: datetime
) -> bool:
    """Cancel a queued or sending broadcast and its pending recipients, in one transaction."""
    moved = await session.execute(
        update(Broadcast)
        .where(
            Broadcast.account_id == account_id,
            Broadcast.id == broadcast_id,
            Broadcast.status.in_(ACTIVE),
        )
        .values(status=BroadcastStatus.CANCELLED.value, cancelled_at=now)
        .returning(Broadcast.id)
        .execution_options(synchronize_session=False)
    )
    if moved.first() is None:
        return False
    await session.execute(
        update(Recipient)
        .where(
            Recipient.broadcast_id == broadcast_id,
            Recipient.status == RecipientStatus.PENDING.value,
        )
        .values(status=RecipientStatus.CANCELLED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return True
