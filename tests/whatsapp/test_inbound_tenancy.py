"""A signature made with one number's secret never writes into another number's account
(found by a CASES.md review: any known secret used to be accepted for any number)."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from tests.helpers import create_account
from wacrm.channels.service import add_channel
from wacrm.models import ChannelKind, InboundPayload, Message
from wacrm.whatsapp.signature import signature_header


def _message(phone_number_id: str, wamid: str) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "14155550100", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Mallory"}, "wa_id": "14155550166"}],
        "messages": [
            {
                "from": "14155550166",
                "id": wamid,
                "timestamp": "1764780000",
                "type": "text",
                "text": {"body": "I am your bank"},
            }
        ],
    }
    change = {"field": "messages", "value": value}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    ).encode()


async def _two_tenants(db, settings):
    victim, attacker = await create_account(db, "Victim"), await create_account(db, "Attacker")
    for account, number, secret in (
        (victim, "111000111000", "victim-secret"),
        (attacker, "222000222000", "attacker-secret"),
    ):
        await add_channel(
            db,
            settings,
            account_id=account.id,
            kind=ChannelKind.META,
            phone_number_id=number,
            display_phone="+14155550100",
            access_token="token",
            app_secret=secret,
        )
    await db.commit()
    return victim, attacker


async def _post(client, body: bytes, secret: str):
    return await client.post(
        "/webhooks/whatsapp",
        content=body,
        headers={
            "content-type": "application/json",
            "X-Hub-Signature-256": signature_header(body, secret.encode()),
        },
    )


async def test_another_numbers_secret_is_refused_and_nothing_stored(client, db, settings):
    await _two_tenants(db, settings)
    forged = _message("111000111000", "wamid.FORGED-1")
    response = await _post(client, forged, "attacker-secret")
    assert response.status_code == 401
    assert await db.scalar(select(func.count()).select_from(Message)) == 0
    assert await db.scalar(select(func.count()).select_from(InboundPayload)) == 0

    sandbox_signed = await _post(client, forged, settings.sandbox_app_secret)
    assert sandbox_signed.status_code == 401


async def test_the_numbers_own_secret_still_works(client, db, settings):
    victim, _ = await _two_tenants(db, settings)
    response = await _post(client, _message("111000111000", "wamid.REAL-1"), "victim-secret")
    assert response.status_code == 200
    stored = (await db.execute(select(Message.account_id))).scalars().all()
    assert stored == [victim.id]
