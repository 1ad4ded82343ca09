"""SQL of the send queue: claiming recipients, recording outcomes, completing broadcasts.

Workers serve every account, so these queries go by broadcast or recipient id (ids the
worker got from its own claim), never by anything a request supplied.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.broadcasts.repository import ACTIVE, UNSETTLED, Recipient
from wacrm.models import Broadcast, BroadcastStatus, RecipientStatus


async def active_with_pending(session: AsyncSession, limit: int) -> list[Broadcast]:
    """Broadcasts with recipients still to claim, oldest first."""
    pending = exists().where(
        Recipient.broadcast_id == Broadcast.id, Recipient.status == RecipientStatus.PENDING.value
    )
    statement = (
        select(Broadcast)
        .where(Broadcast.status.in_(ACTIVE), pending)
        .order_by(Broadcast.created_at, Broadcast.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def claim_recipients(
    session: AsyncSession, broadcast_id: uuid.UUID, limit: int, now: datetime
) -> list[tuple[uuid.UUID, str, list[str]]]:
    """Move up to ``limit`` pending recipients to ``sending`` for this worker, atomically.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take disjoint rows. The
    rows are picked and locked first, then updated by id: an ``UPDATE … WHERE id IN (SELECT
    … LIMIT n FOR UPDATE SKIP LOCKED)`` may run its subquery more than once and claim more
    than ``limit``. SQLite: one writer at a time makes the claim atomic.
    """
    candidates = (
        select(Recipient.id)
        .where(
            Recipient.broadcast_id == broadcast_id,
            Recipient.status == RecipientStatus.PENDING.value,
        )
        .order_by(Recipient.position)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    claimed = await session.execute(
        update(Recipient)
        .where(Recipient.id.in_(ids))
        .where(Recipient.status == RecipientStatus.PENDING.value)
        .values(
            status=RecipientStatus.SENDING.value, attempts=Recipient.attempts + 1, updated_at=now
        )
        .returning(Recipient.id, Recipient.phone, Recipient.params, Recipient.position)
        .execution_options(synchronize_session=False)
    )
    rows = sorted(claimed, key=lambda row: row.position)
    return [(row.id, row.phone, list(row.params or [])) for row in rows]


async def mark_started(session: AsyncSession, broadcast_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.status == BroadcastStatus.QUEUED.value)
        .values(status=BroadcastStatus.SENDING.value, started_at=now)
        .execution_options(synchronize_session=False)
    )


async def lock_claimed(
    session: AsyncSession, recipient_ids: Collection[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Of recipients this worker claimed, those still ``sending`` without a message: ours
    to send. Locked (PostgreSQL) until the messages are linked and committed."""
    result = await session.execute(
        update(Recipient)
        .where(
            Recipient.id.in_(list(recipient_ids)),
            Recipient.status == RecipientStatus.SENDING.value,
            Recipient.message_id.is_(None),
        )
        .values(updated_at=now)
        .returning(Recipient.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


async def link_messages(session: AsyncSession, messages: dict[uuid.UUID, uuid.UUID]) -> None:
    """Record each recipient's message (one executemany)."""
    if messages:
        await session.execute(
            update(Recipient),
            [{"id": recipient, "message_id": message} for recipient, message in messages.items()],
        )


async def settle(
    session: AsyncSession,
    recipient_ids: Collection[uuid.UUID],
    status: RecipientStatus,
    error: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Record the outcome of claimed recipients (only while they are still ``sending``)."""
    await session.execute(
        update(Recipient)
        .where(
            Recipient.id.in_(list(recipient_ids)),
            Recipient.status == RecipientStatus.SENDING.value,
        )
        .values(status=status.value, error=error, updated_at=now)
        .execution_options(synchronize_session=False)
    )


_recipients = Recipient.__table__
assert isinstance(_recipients, Table)
_SETTLE = (
    update(_recipients)
    .where(
        _recipients.c.id == bindparam("recipient_id"),
        _recipients.c.status == RecipientStatus.SENDING.value,
    )
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error"),
        updated_at=bindparam("new_updated_at"),
    )
)


async def settle_each(
    session: AsyncSession,
    outcomes: Sequence[tuple[uuid.UUID, RecipientStatus, dict[str, Any] | None]],
    now: datetime,
) -> None:
    """``settle`` with an outcome per recipient: one executemany."""
    if outcomes:
        rows = [
            {"recipient_id": recipient_id, "new_status": status.value, "new_error": error,
             "new_updated_at": now}
            for recipient_id, status, error in outcomes
        ]  # fmt: skip
        await session.execute(_SETTLE, rows)


async def release(
    session: AsyncSession, recipient_ids: Collection[uuid.UUID], max_claims: int, now: datetime
) -> None:
    """Claimed recipients that got no message (nothing was sent) go back to ``pending``;
    those already claimed ``max_claims`` times fail instead of looping forever."""
    unsent = (
        Recipient.id.in_(list(recipient_ids)),
        Recipient.status == RecipientStatus.SENDING.value,
        Recipient.message_id.is_(None),
    )
    await session.execute(
        update(Recipient)
        .where(*unsent, Recipient.attempts >= max_claims)
        .values(
            status=RecipientStatus.FAILED.value,
            error={"message": "could not be prepared for sending; not sent"},
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Recipient)
        .where(*unsent)
        .values(status=RecipientStatus.PENDING.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def mark_stalled(session: AsyncSession, older_than: datetime) -> list[uuid.UUID]:
    """Recipients left ``sending`` by a worker that died: Meta may have them, so they
    become ``unknown`` and are never sent again. Returns their broadcasts' ids."""
    result = await session.execute(
        update(Recipient)
        .where(
            Recipient.status == RecipientStatus.SENDING.value,
            Recipient.updated_at < older_than,
        )
        .values(
            status=RecipientStatus.UNKNOWN.value,
            error={"message": "the sending worker stopped mid-send; outcome unknown"},
        )
        .returning(Recipient.broadcast_id)
        .execution_options(synchronize_session=False)
    )
    return [row.broadcast_id for row in result]


async def complete_if_done(
    session: AsyncSession, broadcast_id: uuid.UUID, now: datetime
) -> Broadcast | None:
    """Mark the broadcast completed once no recipient is pending or sending. A conditional
    UPDATE: of several workers finishing together, exactly one gets the broadcast back."""
    unsettled = exists().where(
        Recipient.broadcast_id == broadcast_id, Recipient.status.in_(UNSETTLED)
    )
    result = await session.execute(
        update(Broadcast)
        .where(
            Broadcast.id == broadcast_id,
            Broadcast.status == BroadcastStatus.SENDING.value,
            ~unsettled,
        )
        .values(status=BroadcastStatus.COMPLETED.value, completed_at=now)
        .returning(Broadcast.id)
        .execution_options(synchronize_session=False)
    )
    if result.first() is None:
        return None
    statement = select(Broadcast).where(Broadcast.id == broadcast_id)
    completed: Broadcast = (
        await session.execute(statement.execution_options(populate_existing=True))
    ).scalar_one()
    return completed
