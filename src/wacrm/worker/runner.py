"""A small, crash-safe job loop.

Every job is a function that claims due rows from the database, does them and returns
how many it did. The database is the queue: rows are claimed atomically (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL), so any number of loops in any number of processes can run
side by side, and a loop killed mid-job leaves rows that the next claim picks up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from wacrm.kit.db import Database, database_unavailable, first_line
from wacrm.settings import Settings
from wacrm.telemetry.metrics import WORKER_JOB_ERRORS, WORKER_JOB_ITEMS

logger = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """What jobs need; built once per process."""

    database: Database
    settings: Settings
    services: dict[str, object]


Job = Callable[[WorkerContext], Awaitable[int]]


async def run_once(context: WorkerContext, jobs: Sequence[Job]) -> int:
    """Run every job once; a failing job is logged and does not stop the others."""
    done = 0
    for job in jobs:
        name = getattr(job, "__name__", "job")
        try:
            taken = await job(context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            WORKER_JOB_ERRORS.labels(job=name).inc()
            if database_unavailable(exc):  # an outage, not a bug: one line, no traceback
                logger.warning("worker job %s: database unavailable: %s", name, first_line(exc))
            else:
                logger.exception("worker job %s failed", name)
        else:
            if taken:
                WORKER_JOB_ITEMS.labels(job=name).inc(taken)
            done += taken
    return done


async def run_forever(
    context: WorkerContext, jobs: Sequence[Job], stop: asyncio.Event, loops: int = 1
) -> None:
    """Run ``loops`` concurrent loops until ``stop`` is set; idle loops sleep a poll interval."""

    async def loop() -> None:
        while not stop.is_set():
            if await run_once(context, jobs) == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), context.settings.worker_poll_seconds)

    await asyncio.gather(*(loop() for _ in range(loops)))


class BackgroundWorker:
    """The in-process worker of ``wacrm serve`` (embedded default)."""

    def __init__(self, context: WorkerContext, jobs: Sequence[Job]) -> None:
        self._context = context
        self._jobs = jobs
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            run_forever(self._context, self._jobs, self._stop), name="wacrm-worker"
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
