"""Builders for inbound-webhook tests: channels, Meta payloads, signatures, row counts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels import service as channels_service
from wacrm.contacts import repository as contacts_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.models import (
    Channel,
    ChannelKind,
    Direction,
    Message,
    MessageStatus,
)
from wacrm.settings import Settings
from wacrm.whatsapp.signature import signature_header
from wacrm.whatsapp.webhook_routes import router

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "meta"
PHONE_NUMBER_ID = "1234567890"
APP_SECRET = "meta-app-secret-for-tests"
WEBHOOK = "/webhooks/whatsapp"


def mount_webhook(app: FastAPI) -> FastAPI:
    """Mount the webhook router unless the app already does (it will once app.py wires it)."""
    if not any(getattr(route, "path", None) == WEBHOOK for route in app.router.routes):
        app.include_router(router)
    return app


async def create_meta_channel(
    db: AsyncSession,
    settings: Settings,
    account_id: uuid.UUID,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
    app_secret: str = APP_SECRET,
    verify_token: str | None = None,
) -> Channel:
    channel = await channels_service.add_channel(
        db,
        settings,
        account_id=account_id,
        kind=ChannelKind.META,
        phone_number_id=phone_number_id,
        display_phone="+14155550100",
        access_token="meta-access-token",
        app_secret=app_secret,
        waba_id="102290129340398",
        verify_token=verify_token,
    )
    await db.commit()
    return channel


def fixture_body(name: str, phone_number_id: str = PHONE_NUMBER_ID, **wamids: str) -> bytes:
    """A fixture file with its placeholders filled (``OUTBOUND_1="wamid.x"`` and so on)."""
    text = (FIXTURES / name).read_text()
    text = text.replace('"PHONE_NUMBER_ID"', json.dumps(phone_number_id))
    text = text.replace('"WABA_ID"', '"102290129340398"')
    for placeholder, wamid in wamids.items():
        text = text.replace(f'"wamid.{placeholder}"', json.dumps(wamid))
    return text.encode()


def sign(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": signature_header(body, secret.encode()),
        "Content-Type": "application/json",
    }


async def post_signed(
    client: httpx.AsyncClient, body: bytes | dict[str, Any], secret: str = APP_SECRET
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(WEBHOOK, content=raw, headers=sign(raw, secret))


def envelope(*changes: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    """A webhook body with one ``messages`` change per argument (each: contacts/messages/
    statuses, optionally its own ``phone_number_id``)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "14155550100",
                                "phone_number_id": change.pop("phone_number_id", phone_number_id),
                            },
                            **change,
                        },
                    }
                    for change in changes
                ],
            }
        ],
    }


def text_message(
    wamid: str, sender: str = "14155550123", body: str = "Hello", timestamp: int = 1750000100
) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(timestamp),
        "type": "text",
        "text": {"body": body},
    }


def inbound_text(
    wamid: str,
    sender: str = "14155550123",
    body: str = "Hello",
    name: str | None = "Ava Thompson",
    timestamp: int = 1750000100,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A whole webhook body carrying one text message from ``sender``."""
    contacts = [{"profile": {"name": name}, "wa_id": sender}] if name is not None else []
    return envelope(
        {"contacts": contacts, "messages": [text_message(wamid, sender, body, timestamp)]},
        phone_number_id=phone_number_id,
    )


def status_report(wamid: str, status: str, timestamp: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": "14155550140",
        **extra,
    }


async def create_outbound_message(
    db: AsyncSession,
    account_id: uuid.UUID,
    wamid: str,
    *,
    phone: str = "+14155550140",
    status: MessageStatus = MessageStatus.SENT,
) -> Message:
    """An outbound message as the sender leaves it after Meta accepted it."""
    contact, _ = await contacts_repository.find_or_create_by_phone(db, account_id, phone)
    conversation, _ = await conversations_repository.find_or_create(
        db, account_id, contact.id, channel_id=None
    )
    message = Message(
        account_id=account_id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        direction=Direction.OUTBOUND.value,
        type="text",
        content={"body": "Your order has shipped"},
        wamid=wamid,
        status=status.value,
    )
    db.add(message)
    await db.commit()
    return message


async def count(db: AsyncSession, model: type[Any], *where: Any) -> int:
    statement = select(func.count()).select_from(model)
    if where:
        statement = statement.where(*where)
    return int(await db.scalar(statement) or 0)


async def rows(db: AsyncSession, model: type[Any], *where: Any) -> list[Any]:
    """Fresh from the database, whatever this session saw before."""
    statement = select(model).execution_options(populate_existing=True)
    if where:
        statement = statement.where(*where)
    return list((await db.execute(statement)).scalars())


async def one(db: AsyncSession, model: type[Any], *where: Any) -> Any:
    found = await rows(db, model, *where)
    assert len(found) == 1, f"expected one {model.__name__}, found {len(found)}"
    return found[0]
