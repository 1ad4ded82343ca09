"""Inbound webhooks from Meta: verified over the raw bytes, then stored raw and processed
in one transaction, so the 200 means both.

Posts that arrive together are handled together (``receive_webhooks``, driven by
``tasks.InboundPipeline``): one transaction and one commit for all of them, and each
statement shared by all their messages. When processing fails, the transaction rolls back
and the raw payloads are stored on their own, pending, and processed one by one, so that
only the one that fails is left, with backoff, for the worker
(``tasks.process_due_payloads``). Meta still gets its 200 for it: a 500 would only make
Meta send the same batch again and again. A 500 means the payload could not be stored at
all (and then Meta's retry is welcome).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels import repository as channels_repository
from wacrm.channels import service as channels_service
from wacrm.kit.clock import utcnow
from wacrm.kit.db import Database, new_id
from wacrm.kit.errors import BadRequest, Forbidden
from wacrm.kit.text import text_problem
from wacrm.models import InboxState
from wacrm.settings import Settings
from wacrm.whatsapp import inbox_repository
from wacrm.whatsapp.inbound_apply import apply_changes
from wacrm.whatsapp.parsing import MalformedPayload, MessagesChange, ParsedPayload, parse_payload
from wacrm.whatsapp.signature import signature_matches

logger = logging.getLogger(__name__)

# Payloads stored to be processed one by one by this request are its own for this long; if
# the process dies first, the worker picks them up once it has passed.
INLINE_LEASE = timedelta(minutes=1)
RETRY_BASE = timedelta(seconds=5)
RETRY_MAX = timedelta(hours=1)
MAX_ATTEMPTS = 12  # about 4 hours of retries, then the payload is kept as failed
MAX_VERIFY_TOKEN = 128  # Channel.verify_token
MAX_CHALLENGE = 256
MAX_NOTE = 2000

Parsed = ParsedPayload | MalformedPayload  # a body, parsed, or why it can never be


async def verify_subscription(
    session: AsyncSession,
    settings: Settings,
    *,
    mode: str | None,
    token: str | None,
    challenge: str | None,
) -> str:
    """Meta's subscription handshake: the challenge to echo, if the verify token is ours."""
    if mode != "subscribe" or not token or not await _known_verify_token(session, settings, token):
        raise Forbidden("hub.mode must be subscribe and hub.verify_token must be ours.")
    if not challenge or len(challenge) > MAX_CHALLENGE or text_problem(challenge):
        raise BadRequest("hub.challenge is missing or not printable.")
    return challenge


async def _known_verify_token(session: AsyncSession, settings: Settings, token: str) -> bool:
    if len(token) > MAX_VERIFY_TOKEN or text_problem(token):
        return False  # also keeps NUL away from PostgreSQL
    configured = settings.meta_verify_token
    if configured and hmac.compare_digest(configured.encode(), token.encode()):
        return True
    return await inbox_repository.is_channel_verify_token(session, token)


async def receive_webhooks(
    database: Database, settings: Settings, posts: list[tuple[bytes, str | None]]
) -> list[uuid.UUID | None]:
    """Verify each post's signature, then store and process the good ones together.
    Returns each post's payload id, or None where the signature is refused (nothing stored
    for it: see ``_signed_for_their_numbers``).

    A processing error is not raised: the payloads are then stored alone, pending, and
    (if there are several) processed one by one, which leaves only the failing one for a
    retry. Only failing to store them at all raises.
    """
    async with database.sessions() as session:
        accepted = await _signed_for_their_numbers(session, settings, posts)
        payload_ids = [None if parsed is None else new_id() for parsed in accepted]
        payloads = [
            (payload_id, body, parsed)
            for payload_id, (body, _), parsed in zip(payload_ids, posts, accepted, strict=True)
            if payload_id is not None and parsed is not None
        ]
        if not payloads:
            return payload_ids
        try:
            await inbox_repository.store_processed_payloads(
                session, [(payload_id, body) for payload_id, body, _ in payloads], now=utcnow()
            )
            await _apply(session, [(payload_id, parsed) for payload_id, _, parsed in payloads])
            await session.commit()
            return payload_ids
        except Exception as exc:
            logger.exception("%d inbound payloads failed; kept for a retry", len(payloads))
            error = _error_note(exc)
    # That transaction is rolled back: keep the raw payloads alone.
    async with database.sessions() as session:
        if len(payloads) == 1:
            (payload_id, body, _), retry_at = payloads[0], utcnow() + RETRY_BASE
            await inbox_repository.store_payload(
                session, payload_id, body, not_before=retry_at, attempts=1, last_error=error
            )
        else:
            await inbox_repository.store_pending_payloads(
                session,
                [(payload_id, body) for payload_id, body, _ in payloads],
                not_before=utcnow() + INLINE_LEASE,
            )
        await session.commit()
    if len(payloads) > 1:
        for payload_id, _, _ in payloads:
            await process_payload(database, settings, payload_id)
    return payload_ids


async def _signed_for_their_numbers(
    session: AsyncSession, settings: Settings, posts: list[tuple[bytes, str | None]]
) -> list[Parsed | None]:
    """Each post, parsed, if its signature is good; else None.

    First the raw bytes must be signed with a secret we know at all (checked before
    anything is parsed). Then the secret must be one that may speak for every number the
    payload names (``webhook_secrets_of``): one number's secret never writes into another
    number's account. A number we don't know is let through: nothing is written for it.
    """
    known = await channels_service.app_secrets(session, settings)
    secrets_of: dict[str, list[bytes] | None] = {}
    accepted: list[Parsed | None] = []
    for body, signature in posts:
        if not signature_matches(body, signature, known):
            accepted.append(None)
            continue
        parsed: Parsed | None = _parse(body)
        numbers = parsed.changes if isinstance(parsed, ParsedPayload) else []
        for phone_number_id in dict.fromkeys(change.phone_number_id for change in numbers):
            if phone_number_id not in secrets_of:
                channel = await channels_repository.by_phone_number_id(session, phone_number_id)
                secrets_of[phone_number_id] = (
                    None
                    if channel is None
                    else channels_service.webhook_secrets_of(settings, channel)
                )
            secrets = secrets_of[phone_number_id]
            if secrets is not None and not signature_matches(body, signature, secrets):
                logger.warning(
                    "webhook for number %s signed with another's secret", phone_number_id
                )
                parsed = None
                break
        accepted.append(parsed)
    return accepted


def _parse(body: bytes) -> Parsed:
    try:
        return parse_payload(body)
    except MalformedPayload as exc:
        return exc


async def process_payloads(
    database: Database, settings: Settings, payload_ids: list[uuid.UUID]
) -> None:
    """Process stored, pending payloads together, in one transaction (in the given order).

    If that fails, each is processed alone (``process_payload``), so that one bad payload
    can't hold back the others, and a failure is recorded on the payload that caused it.
    """
    if len(payload_ids) == 1:
        await process_payload(database, settings, payload_ids[0])
        return
    try:
        async with database.sessions() as session:
            claimed = await inbox_repository.claim_payloads(session, payload_ids, now=utcnow())
            await _apply(session, [(payload_id, _parse(body)) for payload_id, body in claimed])
            await session.commit()
    except Exception:
        logger.warning("%d inbound payloads failed together; one by one now", len(payload_ids))
        for payload_id in payload_ids:
            await process_payload(database, settings, payload_id)


async def process_payload(database: Database, settings: Settings, payload_id: uuid.UUID) -> bool:
    """Process one stored, pending payload in its own transaction; False when it failed
    (retried later).

    Safe to call twice, even concurrently: only a pending payload is processed, once.
    """
    try:
        async with database.sessions() as session:
            claimed = await inbox_repository.claim_payloads(session, [payload_id], now=utcnow())
            await _apply(session, [(payload_id, _parse(body)) for payload_id, body in claimed])
            await session.commit()
    except Exception as exc:
        logger.exception("inbound payload %s failed; it will be retried", payload_id)
        await _record_failure(database, payload_id, exc)
        return False
    return True


async def _apply(session: AsyncSession, payloads: list[tuple[uuid.UUID, Parsed]]) -> None:
    """Apply parsed payloads already marked done in this transaction, their changes all
    together (set-based), and note on each payload what was skipped or why it was rejected."""
    notes: dict[uuid.UUID, list[str]] = {}
    changes: list[MessagesChange] = []
    owners: list[uuid.UUID] = []
    for payload_id, parsed in payloads:
        if isinstance(parsed, MalformedPayload):
            # Signed by Meta but unusable: retrying can't help, so keep it as failed, with why.
            logger.warning("inbound payload %s rejected: %s", payload_id, parsed)
            await inbox_repository.set_outcome(
                session, payload_id, state=InboxState.FAILED, note=f"rejected: {parsed}"
            )
            continue
        notes[payload_id] = list(parsed.problems)
        changes += parsed.changes
        owners += [payload_id] * len(parsed.changes)
    for payload_id, problems in zip(owners, await apply_changes(session, changes), strict=True):
        notes[payload_id] += problems
    for payload_id, problems in notes.items():
        if problems:
            logger.warning("inbound payload %s: skipped %s", payload_id, "; ".join(problems)[:500])
            note = "skipped: " + "; ".join(problems)
            await inbox_repository.set_outcome(
                session, payload_id, state=InboxState.DONE, note=note[:MAX_NOTE]
            )


def _error_note(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_NOTE]


async def _record_failure(database: Database, payload_id: uuid.UUID, exc: Exception) -> None:
    error = _error_note(exc)
    try:
        async with database.sessions() as session:
            attempts = await inbox_repository.count_failed_attempt(session, payload_id, error)
            if attempts:
                await inbox_repository.schedule_retry(
                    session, payload_id, retry_at=retry_time(attempts)
                )
            await session.commit()
    except Exception:
        # Still pending: the lease taken when it was stored or claimed brings it back.
        logger.exception("could not record the failure of inbound payload %s", payload_id)


def retry_time(attempts: int) -> datetime | None:
    """When to try again after ``attempts`` failures (5 s doubling, at most 1 h); None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return utcnow() + min(RETRY_BASE * (1 << (attempts - 1)), RETRY_MAX)
