"""Helpers shared by the API-key tests: logged-in people, fresh row reads, statement counting."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import TestAccount, create_account, create_member, login
from wacrm.models import ApiKey, AuditEvent, Base, Role

KEYS_URL = "/api/account/api-keys"
AUDIT_URL = "/api/account/audit-log"
ME_URL = "/api/v1/me"
HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


@dataclass
class Person:
    """Someone logged in through the session API, with the CSRF header their writes need."""

    account: TestAccount
    role: Role
    email: str
    csrf: dict[str, str]


async def log_in_as(
    client: httpx.AsyncClient,
    db: AsyncSession,
    role: Role,
    account: TestAccount | None = None,
) -> Person:
    """Log ``client`` in as a person with ``role`` (in a new account unless one is given)."""
    account = account or await create_account(db)
    if role is Role.OWNER:
        email, password = account.owner_email, account.owner_password
    else:
        email, password = await create_member(db, account.id, role)
    return Person(account, role, email, await login(client, email, password))


@asynccontextmanager
async def another_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser: its own cookie jar, the same app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def create_via_api(client: httpx.AsyncClient, person: Person, **body: Any) -> dict[str, Any]:
    """POST a key through the session API; returns ``data`` (``key`` and ``plaintext``)."""
    body.setdefault("name", "n8n prod")
    response = await client.post(KEYS_URL, json=body, headers=person.csrf)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"  # shown once: never cached
    data: dict[str, Any] = response.json()["data"]
    return data


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


async def key_row(db: AsyncSession, key_id: uuid.UUID | str) -> ApiKey:
    """The key as the database holds it now (not a stale copy from the identity map)."""
    await db.rollback()
    statement = (
        select(ApiKey)
        .where(ApiKey.id == uuid.UUID(str(key_id)))
        .execution_options(populate_existing=True)
    )
    row: ApiKey = (await db.execute(statement)).scalar_one()
    return row


async def set_key(db: AsyncSession, key_id: uuid.UUID | str, **values: Any) -> None:
    """Change a key's row directly (arranging expiry or revocation) and commit."""
    await db.rollback()
    await db.execute(update(ApiKey).where(ApiKey.id == uuid.UUID(str(key_id))).values(**values))
    await db.commit()


async def count_keys(db: AsyncSession) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(ApiKey)) or 0)


async def count_audit_events(db: AsyncSession) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(AuditEvent)) or 0)


async def dump_database(db: AsyncSession) -> str:
    """Every value of every row of every table, as one text to search for secrets."""
    await db.rollback()
    parts: list[str] = []
    for table in Base.metadata.sorted_tables:
        for row in (await db.execute(select(table))).all():
            parts.extend(repr(value) for value in row)
            parts.extend(str(value) for value in row)
    return "\n".join(parts)


@dataclass
class StatementLog:
    statements: list[str] = field(default_factory=list)

    def touching(self, table: str) -> list[str]:
        return [s for s in self.statements if re.search(rf"\b{table}\b", s)]

    def updates_of(self, table: str) -> list[str]:
        return [s for s in self.touching(table) if s.lstrip().upper().startswith("UPDATE")]


@contextmanager
def recorded_statements(app: Any) -> Iterator[StatementLog]:
    """Every SQL statement the app's engine sends while the block runs."""
    engine = app.state.database.engine.sync_engine
    log = StatementLog()

    def listener(*args: Any) -> None:
        log.statements.append(args[2])  # (conn, cursor, statement, parameters, context, many)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", listener)
