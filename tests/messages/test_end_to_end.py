"""The whole loop over real HTTP: a customer writes in through the sandbox, we reply through
the Cloud API client, and the sandbox's signed status callbacks carry the reply to ``read``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from tests.helpers import create_account, create_key
from wacrm.app import create_app
from wacrm.channels.service import add_sandbox_channel
from wacrm.models import Message, MessageStatus
from wacrm.settings import Settings

CUSTOMER = "+14155550123"


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[str, object]]:
    """``wacrm serve`` in-process: a real server whose sandbox calls back into itself."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = settings.model_copy(
        update={
            "public_base_url": base,
            "sandbox_base_url": f"{base}/sandbox",
            "sandbox_webhook_url": f"{base}/webhooks/whatsapp",
            "sandbox_status_delay_seconds": 0.05,
            "worker_in_process": True,
        }
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        yield base, app
    finally:
        server.should_exit = True
        await task


async def wait_for_status(http, message_id, headers, wanted: str, seconds: float = 10.0) -> dict:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        body = (await http.get(f"/api/v1/messages/{message_id}", headers=headers)).json()["data"]
        if body["status"] == wanted or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_inbound_then_reply_ends_read(settings, db, app):
    account = await create_account(db)
    key = await create_key(db, account.id)
    channel = await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()

    async with running_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        inbound = await http.post(
            "/sandbox/inbound",
            headers={"Authorization": f"Bearer {settings.sandbox_access_token}"},
            json={
                "phone_number_id": channel.phone_number_id,
                "from": CUSTOMER,
                "text": "Hi, is my order ready?",
                "name": "Ana",
            },
        )
        assert inbound.status_code == 200, inbound.text
        assert inbound.json()["webhook_status"] == 200

        conversations = await db.execute(
            Message.__table__.select().where(Message.account_id == account.id)
        )
        [received] = conversations.all()
        assert received.direction == "inbound"
        assert received.content == {"body": "Hi, is my order ready?"}

        reply = await http.post(
            "/api/v1/messages",
            headers=key.headers,
            json={"to": CUSTOMER, "type": "text", "text": "Yes, it ships today."},
        )
        assert reply.status_code == 201, reply.text
        sent = reply.json()["data"]
        assert sent["status"] == MessageStatus.SENT
        assert sent["whatsapp_message_id"].startswith("wamid.")
        assert sent["contact_created"] is False
        assert sent["conversation_id"] == str(received.conversation_id)

        final = await wait_for_status(http, sent["message_id"], key.headers, "read")
        assert final["status"] == "read", final
        assert [h["status"] for h in final["status_history"]] == ["sent", "delivered", "read"]
        assert final["delivered_at"] and final["read_at"]


@pytest.mark.slow
async def test_template_to_a_new_number_and_free_form_refused(settings, db, app):
    account = await create_account(db)
    key = await create_key(db, account.id)
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()

    async with running_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        refused = await http.post(
            "/api/v1/messages",
            headers=key.headers,
            json={"to": "+14155550188", "type": "text", "text": "hello"},
        )
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "outside_service_window"

        template = await http.post(
            "/api/v1/messages",
            headers=key.headers,
            json={
                "to": "+1 415 555 0188",
                "type": "template",
                "template": {"name": "hello_world", "language": "en_US"},
            },
        )
        assert template.status_code == 201, template.text
        assert template.json()["data"]["contact_created"] is True
        final = await wait_for_status(
            http, template.json()["data"]["message_id"], key.headers, "read"
        )
        assert final["status"] == "read"

        unknown = await http.post(
            "/api/v1/messages",
            headers=key.headers,
            json={
                "to": "+14155550188",
                "type": "template",
                "template": {"name": "no_such_template", "language": "en_US"},
            },
        )
        assert unknown.status_code == 502
        error = unknown.json()["error"]
        assert error["code"] == "meta_error"
        assert error["details"][0]["meta_code"] == 132001
