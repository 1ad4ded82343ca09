"""Inbound webhooks from Meta: verified, then stored raw and processed in one transaction.

The raw payload commits together with what it caused, so the 200 means both. When
processing fails, the transaction rolls back and the raw payload is stored again on its
own, pending, with backoff, for the worker (``tasks.process_due_payloads``): Meta still
gets its 200, because a 500 would only make it send the same batch again and again. Only
a payload that could not be stored at all is a 500 (and Meta's retry is then welcome).
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
from wacrm.whatsapp.inbound_apply import apply_change
from wacrm.whatsapp.parsing import MalformedPayload, parse_payload
from wacrm.whatsapp.signature import InvalidSignature, signature_matches

logger = logging.getLogger(__name__)

RETRY_BASE = timedelta(seconds=5)
RETRY_MAX = timedelta(hours=1)
MAX_ATTEMPTS = 12  # about 4 hours of retries, then the payload is kept as failed
MAX_VERIFY_TOKEN = 128  # Channel.verify_token
MAX_CHALLENGE = 256
MAX_NOTE = 2000


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


async def _signed_for_every_number(
    session: AsyncSession, settings: Settings, body: bytes, signature: str | None
) -> bool:
    """A valid signature is not enough: it must come from the secret of every number the
    payload speaks for, or one tenant's app secret could write into another's inbox."""
    try:
        parsed = parse_payload(body)
    except MalformedPayload:
        return True  # stored, then rejected as malformed: nothing of it is applied
    for change in parsed.changes:
        channel = await channels_repository.by_phone_number_id(session, change.phone_number_id)
        if channel is None:
            continue  # unknown numbers are ignored when applied
        own = channels_service.webhook_secrets_of(settings, channel)
        if not signature_matches(body, signature, own):
            logger.warning("webhook for %s signed with another number's secret", channel.id)
            return False
    return True


async def receive_webhook(
    database: Database, settings: Settings, body: bytes, signature: str | None
) -> uuid.UUID:
    """Verify the signature over the raw bytes, then store and process them.

    Raises InvalidSignature (nothing stored). A processing error is not raised: the payload
    is then kept pending for a retry. Only failing to store it at all raises.
    """
    payload_id = new_id()
    async with database.sessions() as session:
        secrets = await channels_service.app_secrets(session, settings)
        if not signature_matches(body, signature, secrets):
            raise InvalidSignature()
        if not await _signed_for_every_number(session, settings, body, signature):
            raise InvalidSignature()
        try:
            # One transaction for the payload and its effects: half the commits (and round
            # trips) of storing first, and "done" is true exactly when the effects are in.
            await inbox_repository.store_processed_payload(session, payload_id, body, now=utcnow())
            await _apply(session, payload_id, body)
            await session.commit()
            return payload_id
        except Exception as exc:
            logger.exception("inbound payload %s failed; it will be retried", payload_id)
            error = _error_note(exc)
    # That transaction is rolled back: keep the raw payload alone, for the worker.
    async with database.sessions() as session:
        await inbox_repository.store_payload(
            session,
            payload_id,
            body,
            not_before=utcnow() + RETRY_BASE,
            attempts=1,
            last_error=error,
        )
        await session.commit()
    return payload_id


async def process_payload(database: Database, settings: Settings, payload_id: uuid.UUID) -> bool:
    """Process one stored, pending payload in its own transaction; False when it failed
    (retried later).

    Safe to call twice, even concurrently: only a pending payload is processed, once.
    """
    try:
        async with database.sessions() as session:
            body = await inbox_repository.claim_payload(session, payload_id, now=utcnow())
            if body is not None:  # else already processed
                await _apply(session, payload_id, body)
            await session.commit()
    except Exception as exc:
        logger.exception("inbound payload %s failed; it will be retried", payload_id)
        await _record_failure(database, payload_id, exc)
        return False
    return True


async def _apply(session: AsyncSession, payload_id: uuid.UUID, body: bytes) -> None:
    """Parse and apply a payload already marked done in this transaction."""
    try:
        parsed = parse_payload(body)
    except MalformedPayload as exc:
        # Signed by Meta but unusable: retrying can't help, so keep it as failed, with why.
        logger.warning("inbound payload %s rejected: %s", payload_id, exc)
        await inbox_repository.set_outcome(
            session, payload_id, state=InboxState.FAILED, note=f"rejected: {exc}"
        )
        return
    problems = list(parsed.problems)
    for change in parsed.changes:
        problems += await apply_change(session, change)
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
