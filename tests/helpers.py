"""Small builders for test data, going through the real services."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts import service as accounts_service
from wacrm.api_keys import service as keys_service
from wacrm.api_keys.scopes import ALL_SCOPES
from wacrm.audit.service import CLI_ACTOR
from wacrm.models import Role


@dataclass
class TestAccount:
    id: uuid.UUID
    owner_email: str
    owner_password: str


@dataclass
class TestKey:
    id: uuid.UUID
    plaintext: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plaintext}"}


async def create_account(
    db: AsyncSession, name: str = "Acme", email: str | None = None
) -> TestAccount:
    email = email or f"owner-{uuid.uuid4().hex[:8]}@example.com"
    created = await accounts_service.create_account(db, name, email, "owner-password-1")
    await db.commit()
    return TestAccount(id=created.account.id, owner_email=email, owner_password="owner-password-1")


async def create_member(db: AsyncSession, account_id: uuid.UUID, role: Role) -> tuple[str, str]:
    """A new user in the account with ``role``; returns (email, password)."""
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.com"
    user, password = await accounts_service.create_user(db, email, "member-password-1")
    await accounts_service.add_member(db, account_id, user.id, role)
    await db.commit()
    return email, password


async def create_key(
    db: AsyncSession,
    account_id: uuid.UUID,
    scopes: Iterable[str] = ALL_SCOPES,
    name: str = "test key",
    expires_in_days: int | None = None,
) -> TestKey:
    created = await keys_service.create_key(
        db,
        account_id=account_id,
        actor=CLI_ACTOR,
        name=name,
        scopes=scopes,
        expires_in_days=expires_in_days,
    )
    await db.commit()
    return TestKey(id=created.key.id, plaintext=created.plaintext)


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    """Log the client in (cookie kept by the client); returns headers carrying the CSRF token."""
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["data"]["csrf_token"]}
