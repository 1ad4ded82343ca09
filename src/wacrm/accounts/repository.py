"""All SQL about accounts, users, memberships and sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.models import Account, LoginSession, Membership, Role, User


@dataclass(frozen=True)
class SessionRow:
    session_id: uuid.UUID
    csrf_token: str
    expires_at: datetime
    user_id: uuid.UUID
    email: str
    user_name: str
    account_id: uuid.UUID
    account_name: str
    role: Role


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    return result.scalar_one_or_none()


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    result = await session.execute(
        select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)
    )
    return list(result.scalars())


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    return await session.get(Account, account_id)


async def count_accounts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def find_live_session(
    session: AsyncSession, token_hash: str, now: datetime
) -> SessionRow | None:
    """A session counts only while its membership exists: removal logs the person out."""
    statement = (
        select(
            LoginSession.id,
            LoginSession.csrf_token,
            LoginSession.expires_at,
            User.id,
            User.email,
            User.name,
            Account.id,
            Account.name,
            Membership.role,
        )
        .join(User, User.id == LoginSession.user_id)
        .join(Account, Account.id == LoginSession.account_id)
        .join(
            Membership,
            (Membership.user_id == LoginSession.user_id)
            & (Membership.account_id == LoginSession.account_id),
        )
        .where(LoginSession.token_hash == token_hash, LoginSession.expires_at > now)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    return SessionRow(*row[:8], role=Role(row[8]))


async def delete_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.id == session_id))


async def delete_expired_sessions(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
