"""Helpers for broadcast tests: a real server with the sandbox, and draining the queue."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from wacrm.app import create_app
from wacrm.broadcasts.tasks import send_broadcast_batches
from wacrm.kit.db import Database
from wacrm.models import Contact, Event, Message
from wacrm.settings import Settings
from wacrm.worker.runner import WorkerContext


def phones(count: int, start: int = 0) -> list[str]:
    """Distinct valid numbers: +14155550000, +14155550001, ..."""
    return [f"+1415555{i:04d}" for i in range(start, start + count)]


def broadcast_body(numbers: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "Spring launch",
        "template_name": "order_update",
        "template_language": "en_US",
        "recipients": [{"to": n, "params": ["Ana", f"A-{i}"]} for i, n in enumerate(numbers)],
        **extra,
    }


@asynccontextmanager
async def serving(
    settings: Settings, *, status_delay: float = 0.2
) -> AsyncIterator[tuple[str, FastAPI]]:
    """The app on a real port, its sandbox calling back into it; no in-process worker
    (tests run the broadcast jobs themselves)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = settings.model_copy(
        update={
            "public_base_url": base,
            "sandbox_base_url": f"{base}/sandbox",
            "sandbox_webhook_url": f"{base}/webhooks/whatsapp",
            "sandbox_status_delay_seconds": status_delay,
            "whatsapp_messages_per_second": 1000,
            "sandbox_messages_per_second": 5000,
            "rate_limit_per_minute": 10_000,
            "worker_in_process": False,
        }
    )
    app = create_app(settings)
    # Long keep-alive: a connection the server closes as the client reuses it is a send of
    # unknown outcome (correctly never retried), which these tests don't want by chance.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=120)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        yield base, app
    finally:
        server.should_exit = True
        await task


async def drain(context: WorkerContext, batch_size: int | None = None) -> int:
    """Run the send job until it finds nothing to claim; returns recipients taken."""
    taken = 0
    while done := await send_broadcast_batches(context, batch_size=batch_size):
        taken += done
    return taken


async def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Poll ``check`` (async) until it returns something truthy, or time runs out."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def messages_per_phone(database: Database, account_id: uuid.UUID) -> dict[str, int]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(Contact.phone, func.count(Message.id))
            .join(Message, Message.contact_id == Contact.id)
            .where(Message.account_id == account_id, Message.direction == "outbound")
            .group_by(Contact.phone)
        )
        return {phone: count for phone, count in rows}


async def completed_events(database: Database, account_id: uuid.UUID) -> list[Event]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(Event).where(Event.account_id == account_id, Event.type == "broadcast.completed")
        )
        return list(rows.scalars())


async def get_json(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()
