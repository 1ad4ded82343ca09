"""The worker job that delivers webhooks.

Each worker process keeps up to ``webhooks_concurrency`` deliveries in flight. A job run is a
short round (about a second): it leases due deliveries whenever enough slots are free, starts
their attempts as tasks, and records finished ones in small batches. Attempts still running
when the round ends carry over to the next round, so a receiver that hangs for the whole
timeout occupies one slot, never the worker, and never delays the other jobs for long.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta

from sqlalchemy.exc import DBAPIError

from wacrm.kit.clock import utcnow
from wacrm.kit.crypto import decrypt
from wacrm.kit.db import Database
from wacrm.settings import Settings
from wacrm.telemetry.metrics import WEBHOOK_ATTEMPTS
from wacrm.webhooks.queue import ClaimedDelivery, Outcome, RetryPolicy, claim_due, record_outcomes
from wacrm.webhooks.signing import event_body, signature_headers
from wacrm.webhooks.transport import AttemptResult, WebhookSender
from wacrm.worker.runner import WorkerContext

logger = logging.getLogger(__name__)

ROUND_SECONDS = 1.0
RECORD_EVERY_SECONDS = 0.05
RECORD_AT = 100  # finished attempts recorded in one transaction
_SECRET_CACHE_SIZE = 1000


class WebhookPump:
    """Leases, attempts and records deliveries; one per worker process."""

    def __init__(
        self, database: Database, settings: Settings, sender: WebhookSender | None = None
    ) -> None:
        self._database = database
        self._secret_key = settings.secret_key
        self._concurrency = settings.webhooks_concurrency
        self._refill_at = max(1, self._concurrency // 3)
        self._poll_seconds = settings.worker_poll_seconds
        self._lease = timedelta(seconds=settings.webhooks_lease_seconds)
        self._policy = RetryPolicy(
            schedule=tuple(settings.webhooks_retry_schedule_seconds),
            disable_after_failures=settings.webhooks_disable_after_failures,
            disable_after=timedelta(seconds=settings.webhooks_disable_after_seconds),
        )
        self._sender = sender or WebhookSender(
            allow_private=settings.webhooks_allow_private_targets,
            timeout=settings.webhooks_timeout_seconds,
            max_connections=settings.webhooks_concurrency,
        )
        self._in_flight: set[asyncio.Task[Outcome]] = set()
        self._finished: list[Outcome] = []
        self._secrets: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._next_claim_at = 0.0

    async def run_round(self) -> int:
        """One round; returns how many deliveries had an outcome recorded."""
        if self._lock.locked():  # another loop of this process is pumping
            return 0
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ROUND_SECONDS
            recorded = 0
            last_record = loop.time()
            while True:
                free = self._concurrency - len(self._in_flight)
                can_claim = free >= self._refill_at and loop.time() >= self._next_claim_at
                if can_claim and await self._claim(free) < free:
                    # Nothing more is due: look again after a poll interval.
                    self._next_claim_at = loop.time() + self._poll_seconds
                remaining = deadline - loop.time()
                if not self._in_flight or remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    self._in_flight,
                    timeout=min(remaining, RECORD_EVERY_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    self._in_flight.discard(task)
                    self._finished.append(task.result())
                if len(self._finished) >= RECORD_AT or (
                    self._finished and loop.time() - last_record >= RECORD_EVERY_SECONDS
                ):
                    recorded += await self._record()
                    last_record = loop.time()
            return recorded + await self._record()

    async def aclose(self) -> None:
        """Abandon attempts in flight (their leases run out; they will be made again)."""
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        await self._sender.aclose()

    async def _claim(self, limit: int) -> int:
        now = utcnow()
        async with self._database.sessions() as session:
            claimed = await claim_due(
                session, now=now, lease_until=now + self._lease, token=uuid.uuid4(), limit=limit
            )
            await session.commit()
        for delivery in claimed:
            self._in_flight.add(asyncio.create_task(self._deliver(delivery)))
        return len(claimed)

    async def _deliver(self, delivery: ClaimedDelivery) -> Outcome:
        attempted_at = utcnow()
        if not delivery.endpoint_active:
            WEBHOOK_ATTEMPTS.labels(outcome="endpoint_disabled").inc()
            return Outcome(delivery, None, attempted_at)
        try:
            body = event_body(
                delivery.event_id,
                delivery.event_type,
                delivery.occurred_at,
                delivery.account_id,
                delivery.data,
            )
            headers = signature_headers(
                self._secret(delivery.secret_encrypted),
                message_id=str(delivery.event_id),
                timestamp=int(time.time()),
                body=body,
            )
            headers |= {
                "X-Wacrm-Event": delivery.event_type,
                "X-Wacrm-Webhook-Id": str(delivery.endpoint_id),
                "X-Wacrm-Delivery-Id": str(delivery.id),
            }
            result = await self._sender.post(delivery.url, headers, body)
        except Exception as exc:  # a bug or a bad deployment secret: log it, retry later
            logger.exception("webhook delivery %s could not be attempted", delivery.id)
            error = f"internal error: {type(exc).__name__}"
            result = AttemptResult(False, None, 0, error, None, None, internal=True)
        WEBHOOK_ATTEMPTS.labels(outcome=_attempt_label(result)).inc()
        return Outcome(delivery, result, attempted_at)

    def _secret(self, encrypted: str) -> str:
        secret = self._secrets.get(encrypted)
        if secret is None:
            if len(self._secrets) >= _SECRET_CACHE_SIZE:
                self._secrets.clear()
            secret = self._secrets[encrypted] = decrypt(self._secret_key, encrypted)
        return secret

    async def _record(self) -> int:
        outcomes, self._finished = self._finished, []
        if not outcomes:
            return 0
        for attempt in (1, 2):
            try:
                async with self._database.sessions() as session:
                    await record_outcomes(session, outcomes, self._policy, utcnow())
                    await session.commit()
                return len(outcomes)
            except DBAPIError:
                # e.g. a deadlock with an endpoint being deleted. If the retry fails too, the
                # leases run out and the deliveries are attempted again: never lost.
                if attempt == 2:
                    logger.exception("could not record %d webhook attempts", len(outcomes))
                else:
                    logger.warning("recording webhook attempts failed; retrying", exc_info=True)
        return 0


def _attempt_label(result: AttemptResult) -> str:
    if result.succeeded:
        return "succeeded"
    if result.internal:
        return "internal_error"
    return "gone" if result.gone else "failed"


def webhook_pump(context: WorkerContext) -> WebhookPump:
    pump = context.services.get("webhooks")
    if not isinstance(pump, WebhookPump):
        pump = WebhookPump(context.database, context.settings)
        context.services["webhooks"] = pump
    return pump


async def deliver_webhooks(context: WorkerContext) -> int:
    """Deliver due webhook events: lease, POST (signed, SSRF-checked), log, reschedule."""
    return await webhook_pump(context).run_round()
