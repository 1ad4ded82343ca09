"""Data and checks the fault tests share: a tenant with a sandbox number, broadcasts launched
and followed over HTTP, and what the sandbox says it accepted."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.broadcasts.support import broadcast_body
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.helpers import TestKey, create_account, create_key
from wacrm.channels.service import add_sandbox_channel
from wacrm.models import BroadcastRecipient
from wacrm.settings import Settings

POSTGRES_ONLY = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="several processes sharing work need PostgreSQL"
)
POSTGRES_AND_REDIS_ONLY = pytest.mark.skipif(
    not (TEST_DATABASE_URL and TEST_REDIS_URL),
    reason="several processes sharing work and limits need PostgreSQL and Redis",
)
# Sends at full speed, and no status callbacks while the test runs (they only cost CPU here).
FAST_SENDS = {
    "WACRM_WHATSAPP_MESSAGES_PER_SECOND": "10000",
    "WACRM_SANDBOX_MESSAGES_PER_SECOND": "100000",
    "WACRM_SANDBOX_STATUS_DELAY_SECONDS": "3600",
    "WACRM_RATE_LIMIT_PER_MINUTE": "100000",
}


async def create_tenant(
    db: AsyncSession, settings: Settings, scopes: list[str]
) -> tuple[uuid.UUID, TestKey]:
    """An account with a key and a sandbox number (its secrets under ``settings``' key)."""
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=scopes)
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    return account.id, key


async def launch_broadcast(
    http: httpx.AsyncClient, api_url: str, key: TestKey, numbers: list[str]
) -> str:
    response = await http.post(
        f"{api_url}/api/v1/broadcasts", json=broadcast_body(numbers), headers=key.headers
    )
    assert response.status_code == 202, response.text
    assert response.json()["data"]["accepted"] == len(numbers)
    return str(response.json()["data"]["broadcast_id"])


async def broadcast_state(
    http: httpx.AsyncClient, api_url: str, key: TestKey, broadcast_id: str
) -> dict[str, Any]:
    response = await http.get(f"{api_url}/api/v1/broadcasts/{broadcast_id}", headers=key.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def sandbox_sends(http: httpx.AsyncClient, api_url: str, settings: Settings) -> Counter[str]:
    """Sends the sandbox accepted, per number in E.164 (its token: the test's secret's)."""
    token = {"Authorization": f"Bearer {settings.sandbox_access_token}"}
    response = await http.get(f"{api_url}/sandbox/sends", headers=token)
    assert response.status_code == 200, response.text
    return Counter({f"+{wa_id}": n for wa_id, n in response.json()["data"]["by_recipient"].items()})


async def recipient_statuses(db: AsyncSession, broadcast_id: str) -> dict[str, str]:
    rows = await db.execute(
        select(BroadcastRecipient.phone, BroadcastRecipient.status).where(
            BroadcastRecipient.broadcast_id == uuid.UUID(broadcast_id)
        )
    )
    return {phone: status for phone, status in rows}
