"""All SQL about raw inbound webhook payloads (the inbox), statuses that arrived before
their message, and the handshake's token lookup.

Payloads belong to no account until processed (the number inside says whose they are), so
these queries are global by nature; an early status carries its account, and only ever
meets a message of that account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.conversations.status_repository import MessageRef
from wacrm.kit.clock import utcnow
from wacrm.kit.db import new_id
from wacrm.kit.upsert import table_of
from wacrm.models import Channel, Direction, EarlyStatus, InboundPayload, InboxState, Message
from wacrm.whatsapp.parsing import StatusReport


@dataclass(frozen=True)
class EarlyArrival:
    """An early status (see ``models.EarlyStatus``) and the message it has found."""

    report: StatusReport
    message: MessageRef


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


async def store_pending_payloads(
    session: AsyncSession, payloads: list[tuple[uuid.UUID, bytes]], *, not_before: datetime
) -> None:
    """Keep several raw payloads, pending, with one INSERT (see ``store_payload``)."""
    if not payloads:
        return
    now = utcnow()
    rows = [
        {
            "id": payload_id,
            "body": body,
            "state": InboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": not_before,
            "received_at": now,
            "processed_at": None,
            "last_error": None,
        }
        for payload_id, body in payloads
    ]
    await session.execute(_INSERT_PAYLOAD, rows)


async def store_processed_payloads(
    session: AsyncSession, payloads: list[tuple[uuid.UUID, bytes]], *, now: datetime
) -> None:
    """Keep raw payloads as processed (done, one attempt), with one INSERT, for a caller
    that processes them in this same transaction: if it rolls back, they were never stored.
    """
    rows = [
        {
            "id": payload_id,
            "body": body,
            "state": InboxState.DONE.value,
            "attempts": 1,
            "next_attempt_at": now,
            "received_at": now,
            "processed_at": now,
            "last_error": None,
        }
        for payload_id, body in payloads
    ]
    await session.execute(_INSERT_PAYLOAD, rows)


async def claim_payloads(
    session: AsyncSession, payload_ids: list[uuid.UUID], *, now: datetime
) -> list[tuple[uuid.UUID, bytes]]:
    """Mark those of the payloads still pending done, and return them with their bodies, in
    the order of ``payload_ids``; the others (already processed) are left out.

    Called first in the processing transaction: its row locks make concurrent processors
    (the request, the pipeline, a worker) wait, then find them done; a rollback makes them
    pending again.
    """
    statement = (
        update(InboundPayload)
        .where(InboundPayload.id.in_(payload_ids), InboundPayload.state == InboxState.PENDING.value)
        .values(
            state=InboxState.DONE.value,
            processed_at=now,
            attempts=InboundPayload.attempts + 1,
            last_error=None,
        )
        .returning(InboundPayload.id, InboundPayload.body)
        .execution_options(synchronize_session=False)
    )
    bodies = {row.id: bytes(row.body) for row in (await session.execute(statement)).all()}
    return [(payload_id, bodies[payload_id]) for payload_id in payload_ids if payload_id in bodies]


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


async def keep_early_statuses(
    session: AsyncSession, account_id: uuid.UUID, reports: list[StatusReport]
) -> None:
    """Keep statuses whose message the account doesn't have yet, in one INSERT. Each gets
    its own ``received_at`` (a microsecond apart), so they are applied in arrival order."""
    if not reports:
        return
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "account_id": account_id,
            "wamid": report.wamid,
            "status": report.status,
            "occurred_at": report.occurred_at,
            "error": report.error,
            "raw": report.raw,
            "received_at": now + timedelta(microseconds=n),
        }
        for n, report in enumerate(reports)
    ]
    await session.execute(insert(table_of(EarlyStatus)), rows)


async def claim_early_statuses(session: AsyncSession, *, limit: int) -> list[EarlyArrival]:
    """Early statuses whose outbound message now exists in the same account, oldest first,
    deleted in this transaction: applying them is the caller's. ``SKIP LOCKED`` on
    PostgreSQL, so concurrent workers apply each once."""
    statement = (
        select(EarlyStatus, Message.id, Message.conversation_id)
        .join(
            Message,
            (Message.wamid == EarlyStatus.wamid)
            & (Message.account_id == EarlyStatus.account_id)
            & (Message.direction == Direction.OUTBOUND.value),
        )
        .order_by(EarlyStatus.received_at, EarlyStatus.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=EarlyStatus)
    )
    rows = (await session.execute(statement)).all()
    if not rows:
        return []
    await session.execute(
        delete(EarlyStatus)
        .where(EarlyStatus.id.in_([early.id for early, _, _ in rows]))
        .execution_options(synchronize_session=False)
    )
    return [
        EarlyArrival(
            report=StatusReport(
                early.wamid, early.status, early.occurred_at, early.error, early.raw
            ),
            message=MessageRef(
                message_id, early.account_id, conversation_id, Direction.OUTBOUND.value, early.wamid
            ),
        )
        for early, message_id, conversation_id in rows
    ]


async def drop_early_statuses(session: AsyncSession, *, received_before: datetime) -> int:
    """Forget early statuses that never found their message (sends made outside wacrm)."""
    result = await session.execute(
        delete(EarlyStatus)
        .where(EarlyStatus.received_at < received_before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
