"""All SQL about raw inbound webhook payloads (the inbox), plus the handshake's token lookup.

Payloads belong to no account until processed (the number inside says whose they are), so
these queries are global by nature.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.clock import utcnow
from wacrm.kit.upsert import table_of
from wacrm.models import Channel, InboundPayload, InboxState

# Built once: it runs for every webhook, and building a statement costs more than running it.
_INSERT_PAYLOAD = insert(table_of(InboundPayload))


async def store_payload(
    session: AsyncSession,
    payload_id: uuid.UUID,
    body: bytes,
    *,
    not_before: datetime,
    attempts: int = 0,
    last_error: str | None = None,
) -> None:
    """Keep the raw bytes, pending: the worker processes them from ``not_before`` on."""
    values = {
        "id": payload_id,
        "body": body,
        "state": InboxState.PENDING.value,
        "attempts": attempts,
        "next_attempt_at": not_before,
        "received_at": utcnow(),
        "processed_at": None,
        "last_error": last_error,
    }
    await session.execute(_INSERT_PAYLOAD, values)


async def store_processed_payload(
    session: AsyncSession, payload_id: uuid.UUID, body: bytes, *, now: datetime
) -> None:
    """Keep the raw bytes as processed (done, one attempt), for a caller that processes them
    in this same transaction: if it rolls back, they were never stored."""
    values = {
        "id": payload_id,
        "body": body,
        "state": InboxState.DONE.value,
        "attempts": 1,
        "next_attempt_at": now,
        "received_at": now,
        "processed_at": now,
        "last_error": None,
    }
    await session.execute(_INSERT_PAYLOAD, values)


async def claim_payload(
    session: AsyncSession, payload_id: uuid.UUID, *, now: datetime
) -> bytes | None:
    """Mark a pending payload done and return its body, or None if it is not pending.

    Called first in the processing transaction: its row lock makes concurrent processors
    (the request and a worker) wait, then find it done; a rollback makes it pending again.
    """
    statement = (
        update(InboundPayload)
        .where(InboundPayload.id == payload_id, InboundPayload.state == InboxState.PENDING.value)
        .values(
            state=InboxState.DONE.value,
            processed_at=now,
            attempts=InboundPayload.attempts + 1,
            last_error=None,
        )
        .returning(InboundPayload.body)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).first()
    return None if row is None else bytes(row[0])


async def set_outcome(
    session: AsyncSession, payload_id: uuid.UUID, *, state: InboxState, note: str | None
) -> None:
    """After processing: done (``note`` lists skipped items) or failed (why it was rejected)."""
    await session.execute(
        update(InboundPayload)
        .where(InboundPayload.id == payload_id)
        .values(state=state.value, last_error=note)
        .execution_options(synchronize_session=False)
    )


async def count_failed_attempt(session: AsyncSession, payload_id: uuid.UUID, error: str) -> int:
    """Record a processing error on a pending payload; returns its attempts so far (0: gone)."""
    statement = (
        update(InboundPayload)
        .where(InboundPayload.id == payload_id, InboundPayload.state == InboxState.PENDING.value)
        .values(attempts=InboundPayload.attempts + 1, last_error=error)
        .returning(InboundPayload.attempts)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).first()
    return 0 if row is None else int(row[0])


async def schedule_retry(
    session: AsyncSession, payload_id: uuid.UUID, *, retry_at: datetime | None
) -> None:
    """Try again at ``retry_at``; None gives up (state failed, kept for inspection)."""
    values: dict[str, object] = (
        {"next_attempt_at": retry_at} if retry_at else {"state": InboxState.FAILED.value}
    )
    await session.execute(
        update(InboundPayload)
        .where(InboundPayload.id == payload_id, InboundPayload.state == InboxState.PENDING.value)
        .values(values)
        .execution_options(synchronize_session=False)
    )


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[uuid.UUID]:
    """Pending payloads whose time has come, leased to this caller until ``lease_until``.

    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: concurrent workers take disjoint batches.
    (SQLite has one writer at a time and no such clause.)
    """
    statement = (
        select(InboundPayload.id)
        .where(InboundPayload.state == InboxState.PENDING.value)
        .where(InboundPayload.next_attempt_at <= now)
        .order_by(InboundPayload.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(statement)).scalars())
    if ids:
        await session.execute(
            update(InboundPayload)
            .where(InboundPayload.id.in_(ids))
            .values(next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
    return ids


async def is_channel_verify_token(session: AsyncSession, token: str) -> bool:
    """Whether some number was registered with this webhook verify token."""
    statement = select(Channel.id).where(Channel.verify_token == token).limit(1)
    return (await session.execute(statement)).first() is not None
