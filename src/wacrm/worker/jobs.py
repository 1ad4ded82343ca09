"""The jobs every worker runs, and how a worker process gets what they need."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from wacrm.broadcasts.tasks import send_broadcast_batches, settle_stalled_broadcast_recipients
from wacrm.messages.tasks import mark_stalled_sends, retry_due_sends
from wacrm.webhooks.tasks import deliver_webhooks
from wacrm.whatsapp.tasks import apply_early_statuses, process_due_payloads
from wacrm.worker.runner import Job, WorkerContext

logger = logging.getLogger(__name__)


async def inbound_payloads(context: WorkerContext) -> int:
    return await process_due_payloads(context.database, context.settings)


async def early_statuses(context: WorkerContext) -> int:
    return await apply_early_statuses(context.database)


WORKER_JOBS: list[Job] = [
    inbound_payloads,
    early_statuses,
    retry_due_sends,
    mark_stalled_sends,
    send_broadcast_batches,
    settle_stalled_broadcast_recipients,
    deliver_webhooks,
]


def worker_context(app: FastAPI) -> WorkerContext:
    """The in-process worker shares the app's database pool and WhatsApp client."""
    return WorkerContext(
        database=app.state.database,
        settings=app.state.settings,
        services={"whatsapp": app.state.whatsapp},
    )


async def run_worker_process(concurrency: int) -> None:
    """``wacrm worker``: drain due work until SIGTERM/SIGINT, then finish the current jobs."""
    import signal

    from wacrm.kit.db import Database
    from wacrm.settings import get_settings
    from wacrm.whatsapp.client import CloudApiClient
    from wacrm.worker.runner import run_forever

    settings = get_settings()
    database = Database(settings.database_url, pool_size=settings.database_pool_size)
    client = CloudApiClient(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    context = WorkerContext(database=database, settings=settings, services={"whatsapp": client})
    logger.info("worker started: %d job loops", concurrency)
    try:
        await run_forever(context, WORKER_JOBS, stop, loops=concurrency)
    finally:
        await client.aclose()
        await database.dispose()
