"""Creating broadcasts (every rule checked before anything is stored), reading and cancelling.

Counts are computed at read time from the recipients joined to their messages' current
status, so they follow WhatsApp's status webhooks with no counter to keep in step.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.broadcasts import repository
from wacrm.broadcasts.repository import BroadcastCounts, RecipientRow
from wacrm.broadcasts.schemas import BroadcastCreate, BroadcastRecipientIn
from wacrm.channels.service import resolve_channel
from wacrm.events.service import EventType, record_event
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import BadRequest, Conflict, NotFound, field_error
from wacrm.kit.pagination import Page, Paginator
from wacrm.kit.phone import InvalidPhone, normalise_phone
from wacrm.kit.text import clean_name, text_problem
from wacrm.messages.service import WhatsAppNotConfigured
from wacrm.models import Broadcast, BroadcastStatus, RecipientStatus
from wacrm.whatsapp.payloads import MAX_TEMPLATE_PARAM

MAX_PARAM_PROBLEMS = 50


@dataclass
class CreatedBroadcast:
    broadcast: Broadcast
    rejected: list[tuple[int, str]] = field(default_factory=list)


def template_param_problem(value: str) -> str | None:
    """Why Meta would refuse this body parameter (error 132018 and kin), or None."""
    if not value.strip():
        return "must not be empty"
    if "\n" in value or "\r" in value:
        return "must not contain a newline"
    if "\t" in value:
        return "must not contain a tab"
    if " " * 5 in value:
        return "must not contain more than 4 consecutive spaces"
    if problem := text_problem(value):
        return problem
    if len(value) > MAX_TEMPLATE_PARAM:
        return f"must be at most {MAX_TEMPLATE_PARAM} characters"
    return None


def _check_params(recipients: list[BroadcastRecipientIn]) -> None:
    """Refuse parameters Meta always rejects, naming the recipient (0-based index in
    ``recipients``) and the parameter's position (1-based, as in ``{{1}}``)."""
    problems: list[tuple[int, int, str]] = []
    for index, recipient in enumerate(recipients):
        for position, value in enumerate(recipient.params or (), start=1):
            if (problem := template_param_problem(value)) is not None:
                problems.append((index, position, problem))
        if len(problems) >= MAX_PARAM_PROBLEMS:
            break
    if not problems:
        return
    index, position, problem = problems[0]
    raise BadRequest(
        f"Recipient {index}, template parameter {position}: {problem}. WhatsApp refuses "
        "such parameters; nothing was stored.",
        details=[
            {
                "field": f"recipients[{i}].params[{p - 1}]",
                "message": f"parameter {p} {why}",
                "recipient_index": i,
                "param_position": p,
            }
            for i, p, why in problems[:MAX_PARAM_PROBLEMS]
        ],
    )


def _template_field(value: str, name: str) -> str:
    value = value.strip()
    if not value or text_problem(value) or not value.isprintable():
        raise field_error(name, "is required: printable text without control characters")
    return value


def _sort_numbers(
    recipients: list[BroadcastRecipientIn],
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(index, E.164) of each distinct valid number, first occurrence winning, and
    (index, reason) of each invalid one."""
    accepted: list[tuple[int, str]] = []
    rejected: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, recipient in enumerate(recipients):
        try:
            phone = normalise_phone(recipient.to)
        except InvalidPhone as exc:
            rejected.append((index, f"to {exc}"))
            continue
        if phone not in seen:
            seen.add(phone)
            accepted.append((index, phone))
    return accepted, rejected


async def create_broadcast(
    session: AsyncSession, account_id: uuid.UUID, body: BroadcastCreate
) -> CreatedBroadcast:
    """Check everything, then store the broadcast and its recipients (one executemany).

    Invalid numbers are counted as rejected; duplicates (after normalisation) are collapsed,
    the first occurrence winning. Workers send the template after the request commits.
    """
    try:
        name = clean_name(body.name, max_length=200)
    except ValueError as exc:
        raise field_error("name", str(exc)) from None
    template_name = _template_field(body.template_name, "template_name")
    template_language = _template_field(body.template_language, "template_language")
    _check_params(body.recipients)
    channel = await resolve_channel(session, account_id, body.channel_id)
    if channel is None:
        raise WhatsAppNotConfigured("No WhatsApp number is connected to this account.")

    # phonenumbers takes ~0.1 ms a number: 10,000 of them off the event loop.
    accepted, rejected = await asyncio.to_thread(_sort_numbers, body.recipients)
    now = utcnow()
    broadcast_id = uuid.uuid4()
    rows = [
        {
            "id": uuid.uuid4(),
            "account_id": account_id,
            "broadcast_id": broadcast_id,
            "position": index,
            "phone": phone,
            "params": list(body.recipients[index].params or ()),
            "status": RecipientStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for index, phone in accepted
    ]
    nothing_to_send = not rows
    broadcast = Broadcast(
        id=broadcast_id,
        account_id=account_id,
        channel_id=channel.id,
        name=name,
        template_name=template_name,
        template_language=template_language,
        status=(BroadcastStatus.COMPLETED if nothing_to_send else BroadcastStatus.QUEUED).value,
        total_recipients=len(rows) + len(rejected),
        accepted=len(rows),
        rejected=len(rejected),
        duplicates=len(body.recipients) - len(rows) - len(rejected),
        created_at=now,
        completed_at=now if nothing_to_send else None,
    )
    session.add(broadcast)
    await session.flush()
    await repository.insert_recipients(session, rows)
    if nothing_to_send:
        await record_completed(session, broadcast, BroadcastCounts())
    return CreatedBroadcast(broadcast, rejected)


async def record_completed(
    session: AsyncSession, broadcast: Broadcast, counts: BroadcastCounts
) -> None:
    """The one ``broadcast.completed`` event, in the transaction that completed it."""
    data = {
        "broadcast_id": str(broadcast.id),
        "name": broadcast.name,
        "template_name": broadcast.template_name,
        "template_language": broadcast.template_language,
        "channel_id": str(broadcast.channel_id) if broadcast.channel_id else None,
        "total_recipients": broadcast.total_recipients,
        "accepted": broadcast.accepted,
        "rejected": broadcast.rejected,
        "counts": counts.as_dict(),
        "completed_at": broadcast.completed_at.isoformat() if broadcast.completed_at else None,
    }
    await record_event(session, broadcast.account_id, EventType.BROADCAST_COMPLETED, data)


async def _get_or_404(
    session: AsyncSession, account_id: uuid.UUID, broadcast_id: uuid.UUID
) -> Broadcast:
    broadcast = await repository.get(session, account_id, broadcast_id)
    if broadcast is None:
        raise NotFound("Broadcast")
    return broadcast


async def get_broadcast(
    session: AsyncSession, account_id: uuid.UUID, broadcast_id: uuid.UUID
) -> tuple[Broadcast, BroadcastCounts]:
    broadcast = await _get_or_404(session, account_id, broadcast_id)
    counts = await repository.counts(session, account_id, [broadcast.id])
    return broadcast, counts[broadcast.id]


async def list_broadcasts(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    status: BroadcastStatus | None,
) -> tuple[list[tuple[Broadcast, BroadcastCounts]], str | None]:
    broadcasts, next_cursor = await repository.list_page(
        session, account_id, paginator, page, status=status
    )
    counts = await repository.counts(session, account_id, [b.id for b in broadcasts])
    return [(b, counts[b.id]) for b in broadcasts], next_cursor


async def list_recipients(
    session: AsyncSession,
    account_id: uuid.UUID,
    broadcast_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    status: str | None,
) -> tuple[list[RecipientRow], str | None]:
    """A page of the broadcast's recipients; 404 for another account's broadcast."""
    await _get_or_404(session, account_id, broadcast_id)
    return await repository.list_recipients(
        session, account_id, broadcast_id, paginator, page, status=status
    )


async def cancel_broadcast(
    session: AsyncSession, account_id: uuid.UUID, broadcast_id: uuid.UUID
) -> tuple[Broadcast, BroadcastCounts]:
    """Stop a queued or sending broadcast: its pending recipients are never sent. Sends
    already under way finish. A completed or cancelled broadcast is a 409."""
    broadcast = await _get_or_404(session, account_id, broadcast_id)
    if not await repository.mark_cancelled(session, account_id, broadcast_id, utcnow()):
        await session.refresh(broadcast)
        raise Conflict(f"The broadcast is already {broadcast.status}; it cannot be cancelled.")
    await session.refresh(broadcast)
    counts = await repository.counts(session, account_id, [broadcast.id])
    return broadcast, counts[broadcast.id]
