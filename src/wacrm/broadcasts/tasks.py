"""Worker jobs that drain broadcasts.

``send_broadcast_batches`` claims a batch of pending recipients (``sending``, committed
before Meta is called). The batch's contacts, conversations and messages are written and
committed with each recipient's ``message_id`` in one transaction; then the sends run
concurrently (the client's per-number throttle sets the pace), and each outcome is
recorded on the message and the recipient in one transaction:

- ``sent``: Meta accepted it (the message carries the wamid);
- ``failed``: Meta refused it (its error is on the recipient and the message);
- ``unknown``: no usable answer: it may have been sent, so it is never sent again;
- Meta said "later" (130429, 5xx): the message is ``retrying`` and belongs to the
  messages retry job; the recipient is ``sent`` (handed over) and shows as ``retrying``.

``settle_stalled_broadcast_recipients``: a recipient still ``sending`` after
``sends_stalled_after_seconds`` belongs to a worker that died, maybe after Meta took the message:
it becomes ``unknown``, never sent again.

A broadcast completes when no recipient is pending or sending; a conditional UPDATE lets
exactly one worker complete it and record the one ``broadcast.completed`` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.broadcasts import queue_repository as queue
from wacrm.broadcasts import repository
from wacrm.broadcasts.service import record_completed
from wacrm.channels import repository as channels_repository
from wacrm.conversations.threads import open_threads
from wacrm.events.service import EventBatch
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import AppError
from wacrm.messages import repository as messages_repository
from wacrm.messages.content import OutboundContent
from wacrm.messages.sending import (
    Answer,
    Outcome,
    call_meta,
    count_outcomes,
    message_row,
    record_answers,
)
from wacrm.messages.tasks import stalled_after
from wacrm.models import Broadcast, Channel, Message, MessageStatus, RecipientStatus
from wacrm.settings import Settings
from wacrm.telemetry.metrics import BROADCAST_RECIPIENTS, BROADCASTS_COMPLETED
from wacrm.whatsapp.client import CloudApiClient
from wacrm.worker.runner import WorkerContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pace:
    """How a job run sends: ``lanes`` batches of ``batch_size`` in flight, for up to
    ``run_seconds`` before the loop's other jobs get their turn."""

    lanes: int
    batch_size: int
    run_seconds: float


# Measured at a configured 1,000/s (bench/README.md): 952/s from one worker; two lanes of
# 50 in runs of 2 s reached ~590/s, one batch at a time 65/s at 80.
POSTGRES_PACE = Pace(lanes=3, batch_size=100, run_seconds=4.0)
# SQLite has one writer: more lanes and bigger batches only queue on its lock, and the
# status callbacks arriving meanwhile (the same process, in the embedded default) wait
# behind them; this keeps up with the default 80/s.
SQLITE_PACE = Pace(lanes=2, batch_size=50, run_seconds=2.0)
RECORD_ATTEMPTS = 5  # about 30 s of a database that doesn't answer
MAX_CLAIMS = 3  # a batch that cannot be prepared is retried this often, then fails

_RECIPIENT_OUTCOME = {
    MessageStatus.SENT: RecipientStatus.SENT,
    MessageStatus.RETRYING: RecipientStatus.SENT,
    MessageStatus.FAILED: RecipientStatus.FAILED,
    MessageStatus.UNKNOWN: RecipientStatus.UNKNOWN,
}


async def send_broadcast_batches(context: WorkerContext, batch_size: int | None = None) -> int:
    """Send batches of the oldest active broadcasts for up to the pace's ``run_seconds``,
    returning the recipients taken. Its lanes run each a batch behind the one before: while
    one batch's database work runs, the others' calls keep the throttle busy."""
    pace = POSTGRES_PACE if context.database.is_postgres else SQLITE_PACE
    limit = batch_size or pace.batch_size
    deadline = time.monotonic() + pace.run_seconds
    # A batch that fails to prepare goes back to the queue: the other lanes must not claim
    # it again in this run (each claim counts towards MAX_CLAIMS).
    failed = asyncio.Event()
    # Lane n starts once lane n-1 has its first batch prepared; a lane that stops before
    # (no work left, or it failed) stops the lanes after it.
    ready = [asyncio.Event() for _ in range(pace.lanes)]
    stopped_early = [False] * pace.lanes

    async def lane(n: int) -> int:
        taken = 0
        try:
            if n > 0:
                await ready[n - 1].wait()
                if stopped_early[n - 1]:
                    return 0
            while (
                not failed.is_set()
                and (done := await send_one_batch(context, limit, ready[n], failed)) > 0
            ):
                taken += done
                if time.monotonic() >= deadline:
                    break
        finally:
            if not ready[n].is_set():
                stopped_early[n] = True
                ready[n].set()
        return taken

    results = await asyncio.gather(*(lane(n) for n in range(pace.lanes)), return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    for error in errors[1:]:  # the runner logs the first
        logger.error("broadcast lane failed too", exc_info=error)
    if errors:
        raise errors[0]
    return sum(result for result in results if isinstance(result, int))


async def send_one_batch(
    context: WorkerContext,
    limit: int,
    on_prepared: asyncio.Event | None = None,
    on_failed: asyncio.Event | None = None,
) -> int:
    """Claim and send one batch of the oldest active broadcast; returns recipients taken.
    ``on_prepared`` is set once the batch's messages are committed (its calls about to start);
    ``on_failed`` when it could not be prepared, before its recipients go back to the queue."""
    client = context.services["whatsapp"]
    assert isinstance(client, CloudApiClient)
    async with context.database.sessions() as session:
        now = utcnow()
        broadcast, claimed = None, []
        for candidate in await queue.active_with_pending(session, limit=5):
            # The broadcast row before its recipients: the lock order cancelling uses.
            await queue.mark_started(session, candidate.id, now)
            claimed = await queue.claim_recipients(session, candidate.id, limit, now)
            if claimed:
                broadcast = candidate
                break
        channel = None
        if broadcast is not None and broadcast.channel_id is not None:
            channel = await channels_repository.get_channel(
                session, broadcast.account_id, broadcast.channel_id
            )
        await session.commit()  # claimed rows are ours before any call to Meta
    if broadcast is None:
        return 0
    if channel is None:
        error = {"message": "the WhatsApp number of this broadcast was removed"}
        async with context.database.sessions() as session:
            ids = [recipient_id for recipient_id, _, _ in claimed]
            await queue.settle(session, ids, RecipientStatus.FAILED, error, utcnow())
            await session.commit()
        BROADCAST_RECIPIENTS.labels(status=RecipientStatus.FAILED.value).inc(len(ids))
    else:
        try:
            prepared = await _prepare(context, broadcast, channel, claimed)
        except Exception:
            # Meta is only called once the batch is committed: nothing was sent, so the
            # batch goes back to the queue (a few times, then it fails).
            if on_failed is not None:
                on_failed.set()
            async with context.database.sessions() as session:
                ids = [recipient_id for recipient_id, _, _ in claimed]
                await queue.release(session, ids, MAX_CLAIMS, utcnow())
                await session.commit()
            raise
        if on_prepared is not None:
            on_prepared.set()
        # The calls hold no database connection: a batch never needs more than one, and a
        # database problem can't strike between Meta's answer and a connection to record it.
        calls = (call_meta(context.settings, client, channel, item.payload) for item in prepared)
        answers = await asyncio.gather(*calls, return_exceptions=True)
        await _record_answers(context, prepared, answers)
    await complete_if_done(context, broadcast.id)
    return len(claimed)


@dataclass(frozen=True)
class _Prepared:
    recipient_id: uuid.UUID
    message: Message
    payload: dict[str, Any]


async def _prepare(
    context: WorkerContext,
    broadcast: Broadcast,
    channel: Channel,
    claimed: list[tuple[uuid.UUID, str, list[str]]],
) -> list[_Prepared]:
    """Contacts, conversations and messages of the batch, committed in one transaction
    (with each recipient's ``message_id``) before any call to Meta."""
    prepared: list[_Prepared] = []
    failed: list[tuple[uuid.UUID, dict[str, Any]]] = []
    account_id = broadcast.account_id
    async with context.database.sessions() as session:
        now = utcnow()
        ours = await queue.lock_claimed(session, [item[0] for item in claimed], now)
        sendable: list[tuple[uuid.UUID, str, OutboundContent, dict[str, Any]]] = []
        for recipient_id, phone, params in claimed:
            if recipient_id not in ours:
                continue  # settled meanwhile (e.g. as unknown): never send
            content = OutboundContent(
                type="template",
                template_name=broadcast.template_name,
                template_language=broadcast.template_language,
                template_params=tuple(params),
            )
            try:
                payload = content.payload(phone, None)
            except AppError as exc:  # checked at creation; kept for rows written otherwise
                failed.append((recipient_id, {"message": exc.message, "details": exc.details}))
                continue
            sendable.append((recipient_id, phone, content, payload))
        # Every thread of the batch at once: one lookup and at most one INSERT per table.
        events = EventBatch(account_id)
        threads = await open_threads(
            session,
            account_id,
            {phone: None for _, phone, _, _ in sendable},
            channel_id=channel.id,
            source="broadcast",
            events=events,
        )
        for recipient_id, phone, content, payload in sendable:
            thread = threads[phone]
            message = message_row(
                account_id=account_id,
                conversation_id=thread.conversation_id,
                contact_id=thread.contact_id,
                channel_id=channel.id,
                message_type=content.type,
                content=content.as_json(),
                reply_to_wamid=None,
            )
            session.add(message)
            prepared.append(_Prepared(recipient_id, message, payload))
        await session.flush()
        await messages_repository.touch_conversations(
            session,
            account_id,
            [threads[phone].conversation_id for _, phone, _, _ in sendable],
            now,
        )
        await queue.link_messages(
            session, {item.recipient_id: item.message.id for item in prepared}
        )
        for recipient_id, error in failed:
            await queue.settle(session, [recipient_id], RecipientStatus.FAILED, error, now)
        await events.record(session)
        await session.commit()  # every message exists before Meta is called
    BROADCAST_RECIPIENTS.labels(status=RecipientStatus.FAILED.value).inc(len(failed))
    return prepared


async def _record_answers(
    context: WorkerContext,
    prepared: list[_Prepared],
    answers: list[Answer | BaseException],
) -> None:
    """Record every answer on its message and recipient, in one transaction. Meta has
    answered: if the database fails, try again for a while (a recipient left ``sending``
    becomes ``unknown``, sent or not)."""
    for item, answer in zip(prepared, answers, strict=True):
        if isinstance(answer, BaseException):
            # Left `sending`: settled as unknown later, as it may have reached Meta.
            logger.error("broadcast send to %s failed", item.recipient_id, exc_info=answer)
    answered = [
        (item, answer)
        for item, answer in zip(prepared, answers, strict=True)
        if isinstance(answer, Answer)
    ]
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            async with context.database.sessions() as session:
                outcomes = await _record(session, context.settings, answered)
                await session.commit()
            count_outcomes(outcomes)
            for outcome in outcomes:
                status = _RECIPIENT_OUTCOME.get(outcome.status, RecipientStatus.UNKNOWN)
                BROADCAST_RECIPIENTS.labels(status=status.value).inc()
            return
        except (DBAPIError, OSError) as exc:
            if attempt == RECORD_ATTEMPTS:
                logger.error("recording %d broadcast answers failed: %s", len(answered), exc)
                return
            logger.warning("recording broadcast answers failed (%s); trying again", exc)
            await asyncio.sleep(min(2.0**attempt, 10.0))


async def _record(
    session: AsyncSession, settings: Settings, answered: list[tuple[_Prepared, Answer]]
) -> list[Outcome]:
    outcomes = await record_answers(
        session, settings, [(item.message, answer) for item, answer in answered]
    )
    settled = [
        (item.recipient_id, _RECIPIENT_OUTCOME.get(outcome.status, RecipientStatus.UNKNOWN),
         _error(outcome))
        for (item, _), outcome in zip(answered, outcomes, strict=True)
    ]  # fmt: skip
    await queue.settle_each(session, settled, utcnow())
    return outcomes


def _error(outcome: Outcome) -> dict[str, object] | None:
    if outcome.status is MessageStatus.FAILED and outcome.error is not None:
        return outcome.error.as_dict()
    if outcome.status is MessageStatus.UNKNOWN:
        return {"message": "no usable answer from WhatsApp; the message may have been sent"}
    return None


async def complete_if_done(context: WorkerContext, broadcast_id: uuid.UUID) -> bool:
    """Complete the broadcast if nothing is left to send; True for the one worker that did."""
    async with context.database.sessions() as session:
        broadcast = await queue.complete_if_done(session, broadcast_id, utcnow())
        if broadcast is not None:
            counts = await repository.counts(session, broadcast.account_id, [broadcast.id])
            await record_completed(session, broadcast, counts[broadcast.id])
        await session.commit()
    if broadcast is not None:
        BROADCASTS_COMPLETED.inc()
    return broadcast is not None


async def settle_stalled_broadcast_recipients(context: WorkerContext) -> int:
    """Recipients left ``sending`` by a dead worker become ``unknown`` (never re-sent)."""
    async with context.database.sessions() as session:
        broadcast_ids = await queue.mark_stalled(session, utcnow() - stalled_after(context))
        await session.commit()
    BROADCAST_RECIPIENTS.labels(status=RecipientStatus.UNKNOWN.value).inc(len(broadcast_ids))
    for broadcast_id in set(broadcast_ids):
        await complete_if_done(context, broadcast_id)
    return len(broadcast_ids)
