"""All SQL about accounts, users, memberships, invitations and sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.models import Account, Invitation, LoginSession, Membership, Role, User


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


@dataclass(frozen=True)
class AccountRow:
    account_id: uuid.UUID
    name: str
    owner_email: str | None
    created_at: datetime


async def list_accounts(session: AsyncSession) -> list[AccountRow]:
    """Every account of the installation with its owner, oldest first (operators only:
    the CLI, never a request)."""
    owner = (
        select(Membership.account_id, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.role == Role.OWNER.value)
        .subquery()
    )
    statement = (
        select(Account.id, Account.name, owner.c.email, Account.created_at)
        .outerjoin(owner, owner.c.account_id == Account.id)
        .order_by(Account.created_at, Account.id)
    )
    return [AccountRow(*row) for row in (await session.execute(statement)).all()]


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


@dataclass(frozen=True)
class MemberRow:
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


def _members(account_id: uuid.UUID) -> Select[uuid.UUID, str, str, str, datetime]:
    return (
        select(User.id, User.email, User.name, Membership.role, Membership.created_at)
        .join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account_id)
    )


def _member_row(row: Row[uuid.UUID, str, str, str, datetime]) -> MemberRow:
    user_id, email, name, role, joined_at = row
    return MemberRow(user_id, email, name, Role(role), joined_at)


async def list_members(session: AsyncSession, account_id: uuid.UUID) -> list[MemberRow]:
    statement = _members(account_id).order_by(Membership.created_at, User.email)
    return [_member_row(row) for row in (await session.execute(statement)).all()]


async def get_member(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID
) -> MemberRow | None:
    row = (await session.execute(_members(account_id).where(User.id == user_id))).one_or_none()
    return None if row is None else _member_row(row)


async def set_role(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, *, was: Role, now: Role
) -> bool:
    """Change a role only if it is still ``was``: a concurrent change makes this a no-op."""
    result = await session.execute(
        update(Membership)
        .where(
            Membership.account_id == account_id,
            Membership.user_id == user_id,
            Membership.role == was.value,
        )
        .values(role=now.value)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_membership(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, *, role: Role
) -> bool:
    """Remove a member only if their role is still ``role`` (never an owner by accident)."""
    result = await session.execute(
        delete(Membership).where(
            Membership.account_id == account_id,
            Membership.user_id == user_id,
            Membership.role == role.value,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_sessions_in(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await session.execute(
        delete(LoginSession).where(
            LoginSession.account_id == account_id, LoginSession.user_id == user_id
        )
    )


def _invitations(account_id: uuid.UUID) -> Select[Any]:
    return select(Invitation).where(Invitation.account_id == account_id)


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    invited_by_email: str | None


async def pending_invitations(
    session: AsyncSession, account_id: uuid.UUID, now: datetime
) -> list[InvitationRow]:
    statement = (
        select(Invitation, User.email)
        .where(
            Invitation.account_id == account_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .outerjoin(User, User.id == Invitation.invited_by_id)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    )
    return [InvitationRow(*row) for row in (await session.execute(statement)).all()]


async def pending_invitation_for(
    session: AsyncSession, account_id: uuid.UUID, email: str, now: datetime
) -> Invitation | None:
    statement = _invitations(account_id).where(
        Invitation.email == email,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )
    invitation: Invitation | None = (await session.execute(statement.limit(1))).scalar()
    return invitation


async def get_invitation(
    session: AsyncSession, account_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation | None:
    statement = _invitations(account_id).where(Invitation.id == invitation_id)
    invitation: Invitation | None = (await session.execute(statement)).scalar_one_or_none()
    return invitation


async def find_invitation_by_token(
    session: AsyncSession, token_hash: str
) -> tuple[Invitation, str] | None:
    """The invitation a link's token names, with its account's name (any account: the
    token itself is the proof, as an API key is)."""
    statement = (
        select(Invitation, Account.name)
        .join(Account, Account.id == Invitation.account_id)
        .where(Invitation.token_hash == token_hash)
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row[0], row[1])


async def mark_invitation_revoked(
    session: AsyncSession,
    account_id: uuid.UUID,
    invitation_id: uuid.UUID,
    revoked_by: uuid.UUID | None,
    now: datetime,
) -> bool:
    result = await session.execute(
        update(Invitation)
        .where(
            Invitation.account_id == account_id,
            Invitation.id == invitation_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_by_id=revoked_by)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def claim_invitation(
    session: AsyncSession, invitation_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> bool:
    """Use the invitation up in one statement: of two concurrent accepts, one wins."""
    result = await session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(accepted_at=now, accepted_by_id=user_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
