"""Sending through the Cloud API: the message row exists before the call, and the call's
outcome moves it on — ``sent`` (with the wamid), ``failed`` (with Meta's error),
``retrying`` (Meta said later: 130429, 5xx, no connection) or ``unknown`` (timed out
after sending: Meta may have it, so it is never sent again by itself).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels.service import credentials
from wacrm.events.service import EventType, record_events
from wacrm.kit.clock import utcnow
from wacrm.messages import repository
from wacrm.models import Channel, Message, MessageStatus
from wacrm.settings import Settings
from wacrm.telemetry.metrics import WHATSAPP_SENDS
from wacrm.whatsapp.client import CloudApiClient, MetaError, MetaOutcomeUnknown

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Outcome:
    status: MessageStatus
    wamid: str | None = None
    error: MetaError | None = None


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Exponential backoff with jitter: base, 2 x base, 4 x base... capped at 10 minutes."""
    seconds = min(settings.whatsapp_retry_base_seconds * 2 ** max(attempts - 1, 0), 600.0)
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class Answer:
    """What one call to Meta came back with: a wamid, or why not."""

    wamid: str | None = None
    unknown: MetaOutcomeUnknown | None = None
    refusal: MetaError | None = None
    at: datetime = field(default_factory=utcnow)


async def call_meta(
    settings: Settings, client: CloudApiClient, channel: Channel, payload: dict[str, Any]
) -> Answer:
    """Call Meta; Meta's errors become the answer (nothing here touches the database)."""
    try:
        result = await client.send(credentials(settings, channel), payload)
    except MetaOutcomeUnknown as exc:
        return Answer(unknown=exc)
    except MetaError as exc:
        return Answer(refusal=exc)
    return Answer(wamid=result.wamid)


async def dispatch(
    session: AsyncSession,
    settings: Settings,
    client: CloudApiClient,
    *,
    message: Message,
    channel: Channel,
    payload: dict[str, Any],
) -> Outcome:
    """Call Meta for a stored ``pending`` message and record what happened (flushes only)."""
    answer = await call_meta(settings, client, channel, payload)
    outcome = await record_answer(session, settings, message, answer)
    count_outcomes([outcome])
    return outcome


def count_outcomes(outcomes: list[Outcome]) -> None:
    """Count sends by outcome, once they are recorded (a retried record counts once)."""
    for outcome in outcomes:
        WHATSAPP_SENDS.labels(outcome=outcome.status.value).inc()


async def record_answer(
    session: AsyncSession, settings: Settings, message: Message, answer: Answer
) -> Outcome:
    """Move a ``pending`` message on by Meta's answer (flushes only)."""
    return (await record_answers(session, settings, [(message, answer)]))[0]


async def record_answers(
    session: AsyncSession, settings: Settings, answered: Sequence[tuple[Message, Answer]]
) -> list[Outcome]:
    """Move ``pending`` messages on by Meta's answers, set-based: one UPDATE for them all and
    one INSERT of status events per account (flushes only). A message no longer ``pending``
    (settled meanwhile) is left as it is, with no event."""
    decided = [(message, *decide(settings, message, answer)) for message, answer in answered]
    ours = await repository.lock_pending(session, [message.id for message, _, _ in decided])
    await repository.set_outcomes(
        session, {message.id: values for message, _, values in decided if message.id in ours}
    )
    events: dict[uuid.UUID, list[tuple[EventType, dict[str, Any]]]] = defaultdict(list)
    for message, outcome, _ in decided:
        if message.id in ours and outcome.status in _ANNOUNCED:
            message.wamid = outcome.wamid
            events[message.account_id].append(_status_event(message, outcome))
    for account_id, account_events in events.items():
        await record_events(session, account_id, account_events)
    return [outcome for _, outcome, _ in decided]


# Sent and failed are news to the account's systems; retrying and unknown are not (yet).
_ANNOUNCED = frozenset({MessageStatus.SENT, MessageStatus.FAILED})


def decide(settings: Settings, message: Message, answer: Answer) -> tuple[Outcome, dict[str, Any]]:
    """What Meta's answer makes of a ``pending`` message: its outcome, and every column that
    records it (the same columns for every outcome, so that one UPDATE can set them all)."""
    attempts = message.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "wamid": None,
        "error": None,
        "next_attempt_at": None,
        "failed_at": None,
    }
    if answer.unknown is not None:
        values.update(status=MessageStatus.UNKNOWN.value, error={"message": str(answer.unknown)})
        return Outcome(MessageStatus.UNKNOWN), values
    if answer.refusal is not None:
        exc = answer.refusal
        values["error"] = exc.as_dict()
        if exc.retry_later and attempts < MAX_ATTEMPTS:
            values.update(
                status=MessageStatus.RETRYING.value,
                next_attempt_at=answer.at + retry_delay(settings, attempts),
            )
            return Outcome(MessageStatus.RETRYING, error=exc), values
        values.update(status=MessageStatus.FAILED.value, failed_at=answer.at)
        return Outcome(MessageStatus.FAILED, error=exc), values
    values.update(status=MessageStatus.SENT.value, wamid=answer.wamid)
    return Outcome(MessageStatus.SENT, wamid=answer.wamid), values


def _status_event(message: Message, outcome: Outcome) -> tuple[EventType, dict[str, Any]]:
    data = {
        "message_id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "wamid": message.wamid,
        "status": outcome.status.value,
        "error": outcome.error.as_dict() if outcome.error is not None else None,
    }
    return EventType.MESSAGE_STATUS_UPDATED, data


def message_row(
    *,
    account_id: uuid.UUID,
    conversation_id: uuid.UUID,
    contact_id: uuid.UUID,
    channel_id: uuid.UUID,
    message_type: str,
    content: dict[str, Any],
    reply_to_wamid: str | None,
) -> Message:
    return Message(
        account_id=account_id,
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel_id=channel_id,
        direction="outbound",
        type=message_type,
        content=content,
        reply_to_wamid=reply_to_wamid,
        status=MessageStatus.PENDING.value,
        attempts=0,
    )
