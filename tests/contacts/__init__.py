"""Helpers for the contacts and conversations tests: tenants with keys, rows with fixed times."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import TestKey, create_account, create_key
from wacrm.models import Contact, Event

CONTACTS = "/api/v1/contacts"
TAGS = "/api/v1/tags"


@dataclass
class Tenant:
    account_id: uuid.UUID
    key: TestKey

    @property
    def headers(self) -> dict[str, str]:
        return self.key.headers


async def tenant(db: AsyncSession, *scopes: str, name: str = "Acme") -> Tenant:
    """An account and a key with ``scopes`` (every scope when none are named)."""
    account = await create_account(db, name)
    key = await create_key(db, account.id, scopes) if scopes else await create_key(db, account.id)
    return Tenant(account.id, key)


async def post_contact(client: httpx.AsyncClient, who: Tenant, **body: Any) -> httpx.Response:
    return await client.post(CONTACTS, json=body, headers=who.headers)


async def new_contact(client: httpx.AsyncClient, who: Tenant, **body: Any) -> dict[str, Any]:
    response = await post_contact(client, who, **body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def insert_contact(
    db: AsyncSession, account_id: uuid.UUID, phone: str, created_at: datetime, **fields: Any
) -> Contact:
    """A contact row written directly, with a chosen ``created_at`` (ties, ordering)."""
    contact = Contact(
        account_id=account_id,
        phone=phone,
        created_at=created_at,
        updated_at=created_at,
        **fields,
    )
    db.add(contact)
    await db.commit()
    return contact


async def events_of(db: AsyncSession, account_id: uuid.UUID, event_type: str) -> list[Event]:
    statement = select(Event).where(Event.account_id == account_id, Event.type == event_type)
    return list((await db.execute(statement)).scalars())


async def count_contacts(db: AsyncSession, account_id: uuid.UUID | None = None) -> int:
    statement = select(func.count()).select_from(Contact)
    if account_id is not None:
        statement = statement.where(Contact.account_id == account_id)
    return int((await db.execute(statement)).scalar_one())


def error_of(response: httpx.Response, status: int, code: str = "bad_request") -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


async def walk(
    client: httpx.AsyncClient, url: str, who: Tenant, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a paginated list, following ``next_cursor`` to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers=who.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")
