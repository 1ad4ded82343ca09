"""All SQL about API keys. Every query but the authenticator's starts from the account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from wacrm.models import Account, ApiKey, User


@dataclass(frozen=True)
class AuthRecord:
    """What the authenticator needs about a key, fetched in one indexed lookup."""

    key_id: uuid.UUID
    account_id: uuid.UUID
    account_name: str
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class RosterRow:
    key: ApiKey
    created_by_email: str | None
    revoked_by_email: str | None


def _account_keys(account_id: uuid.UUID) -> Select[Any]:
    return select(ApiKey).where(ApiKey.account_id == account_id)


_AUTH_LOOKUP = (
    select(
        ApiKey.id,
        ApiKey.account_id,
        Account.name,
        ApiKey.name,
        ApiKey.prefix,
        ApiKey.scopes,
        ApiKey.expires_at,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
    )
    .join(Account, Account.id == ApiKey.account_id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


async def find_for_auth(connection: AsyncConnection, key_hash: str) -> AuthRecord | None:
    """One indexed lookup by hash, outside any transaction (a single round trip)."""
    row = (await connection.execute(_AUTH_LOOKUP, {"key_hash": key_hash})).one_or_none()
    return None if row is None else AuthRecord(*row)


async def touch_last_used(
    session: AsyncSession, key_id: uuid.UUID, now: datetime, written_before: datetime
) -> None:
    """Write last_used_at only if the stored value is older than the interval (any process)."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < written_before),
        )
        .values(last_used_at=now)
    )


async def get_key(session: AsyncSession, account_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    statement = _account_keys(account_id).where(ApiKey.id == key_id)
    key: ApiKey | None = (await session.execute(statement)).scalar_one_or_none()
    return key


async def roster(
    session: AsyncSession, account_id: uuid.UUID, key_id: uuid.UUID | None = None
) -> list[RosterRow]:
    creator, revoker = aliased(User), aliased(User)
    statement = (
        select(ApiKey, creator.email, revoker.email)
        .where(ApiKey.account_id == account_id)
        .outerjoin(creator, creator.id == ApiKey.created_by_id)
        .outerjoin(revoker, revoker.id == ApiKey.revoked_by_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    if key_id is not None:
        statement = statement.where(ApiKey.id == key_id)
    return [RosterRow(*row) for row in (await session.execute(statement)).all()]


async def roster_entry(
    session: AsyncSession, account_id: uuid.UUID, key_id: uuid.UUID
) -> RosterRow | None:
    """One key as the roster shows it (with who created and who revoked it)."""
    rows = await roster(session, account_id, key_id)
    return rows[0] if rows else None


async def mark_revoked(
    session: AsyncSession,
    account_id: uuid.UUID,
    key_id: uuid.UUID,
    revoked_by: uuid.UUID | None,
    now: datetime,
) -> bool:
    """Revoke in one statement; False if it was already revoked (or is not ours)."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.account_id == account_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by_id=revoked_by)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_rolled(
    session: AsyncSession,
    account_id: uuid.UUID,
    key_id: uuid.UUID,
    *,
    rolled_to_id: uuid.UUID,
    ends_at: datetime,
    revoke: bool,
    revoked_by: uuid.UUID | None,
) -> bool:
    """Link the old key to its replacement in one statement; False if someone got there first."""
    values: dict[str, Any] = {"rolled_to_id": rolled_to_id}
    if revoke:
        values.update(revoked_at=ends_at, revoked_by_id=revoked_by)
    else:
        values["expires_at"] = ends_at
    result = await session.execute(
        update(ApiKey)
        .where(
            ApiKey.account_id == account_id,
            ApiKey.id == key_id,
            ApiKey.rolled_to_id.is_(None),
            ApiKey.revoked_at.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
