"""Background work for the inbound webhook: this process's pipeline, which handles the posts
that arrive together as one group, and the worker job for payloads still pending after a
crash or an error."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from fastapi import FastAPI

from wacrm.events.service import EventBatch
from wacrm.kit.clock import utcnow
from wacrm.kit.db import Database
from wacrm.settings import Settings
from wacrm.whatsapp import inbound, inbox_repository
from wacrm.whatsapp.inbound_apply import apply_statuses
from wacrm.whatsapp.signature import InvalidSignature

logger = logging.getLogger(__name__)

# An early status that found no message in this long never will (a send made elsewhere).
EARLY_STATUS_TTL = timedelta(days=1)
# A claimed payload is the claimer's for this long; if that worker dies, another takes it.
WORKER_LEASE = timedelta(minutes=5)
# Posts handled per transaction by the pipeline: enough to share each statement among
# many messages, few enough to keep a transaction (and the wait for its commit) short.
PIPELINE_GROUP = 32
# Groups handled at once on PostgreSQL: while one waits for the database (its commit above
# all), the next one uses the CPU. SQLite has one writer at a time: one group at a time.
PIPELINE_RUNNERS = 2


class InboundPipeline:
    """Receives this process's webhook posts. Each is verified, stored and processed before
    its 200; the posts that arrive while a group is being handled wait for it, then go
    together as the next group: one transaction, one commit, and each statement shared by
    all their messages ("group commit").

    A post that finds the pipeline idle is a group of one, handled at once: the grouping
    costs latency only when the alternative was waiting for the database anyway.
    """

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._waiting: list[tuple[bytes, str | None, asyncio.Future[uuid.UUID]]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._runners = PIPELINE_RUNNERS if database.is_postgres else 1

    async def receive(self, body: bytes, signature: str | None) -> uuid.UUID:
        """Verify, store and process one post (with those arriving meanwhile); its payload
        id. Raises InvalidSignature (nothing stored)."""
        handled: asyncio.Future[uuid.UUID] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, signature, handled))
        if len(self._running) < self._runners:
            self._running.add(asyncio.create_task(self._receive_waiting()))
        return await handled

    async def _receive_waiting(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[:PIPELINE_GROUP]
                del self._waiting[:PIPELINE_GROUP]
                await self._receive_group(group)
        finally:
            # Right after the last look at the queue (no await between): a post queued from
            # now on starts a runner of its own.
            runner = asyncio.current_task()
            if runner is not None:
                self._running.discard(runner)

    async def _receive_group(
        self, group: list[tuple[bytes, str | None, asyncio.Future[uuid.UUID]]]
    ) -> None:
        try:
            posts = [(body, signature) for body, signature, _ in group]
            payload_ids = await inbound.receive_webhooks(self._database, self._settings, posts)
        except Exception as exc:  # not even stored: a 500, and Meta sends them again
            for *_, handled in group:
                if not handled.done():
                    handled.set_exception(exc)
            return
        for (*_, handled), payload_id in zip(group, payload_ids, strict=True):
            if handled.done():  # its request went away; its payload is in anyway
                continue
            if payload_id is None:
                handled.set_exception(InvalidSignature())
            else:
                handled.set_result(payload_id)


def inbound_pipeline(app: FastAPI) -> InboundPipeline:
    """The app's pipeline, created on first use."""
    pipeline: InboundPipeline | None = getattr(app.state, "inbound_pipeline", None)
    if pipeline is None:
        pipeline = InboundPipeline(app.state.database, app.state.settings)
        app.state.inbound_pipeline = pipeline
    return pipeline


async def process_due_payloads(database: Database, settings: Settings, limit: int = 50) -> int:
    """Process up to ``limit`` pending payloads whose retry time has come: together, in one
    transaction, or one by one if that fails (``inbound.process_payloads``).

    Returns how many were taken (processed or failed again), so a worker loop can poll
    again at once when it got a full batch. Safe with any number of workers.
    """
    now = utcnow()
    async with database.sessions() as session:
        due = await inbox_repository.claim_due(
            session, now=now, lease_until=now + WORKER_LEASE, limit=limit
        )
        await session.commit()
    if due:
        await inbound.process_payloads(database, settings, due)
    return len(due)


async def apply_early_statuses(database: Database, limit: int = 500) -> int:
    """Apply the statuses that arrived before their message's wamid was committed, now that
    it is, and forget those too old to ever find it. Returns how many were applied."""
    async with database.sessions() as session:
        arrivals = await inbox_repository.claim_early_statuses(session, limit=limit)
        by_account: dict[uuid.UUID, list[inbox_repository.EarlyArrival]] = {}
        for arrival in arrivals:
            by_account.setdefault(arrival.message.account_id, []).append(arrival)
        for account_id, of_account in by_account.items():
            events = EventBatch(account_id)
            applicable = [(arrival.report, arrival.message) for arrival in of_account]
            await apply_statuses(session, account_id, applicable, events)
            await events.record(session)
        await inbox_repository.drop_early_statuses(
            session, received_before=utcnow() - EARLY_STATUS_TTL
        )
        await session.commit()
    return len(arrivals)
