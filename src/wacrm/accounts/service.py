"""Accounts and their members: creating them, roles, removal, ownership; logging people in."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts import repository
from wacrm.accounts.passwords import generate_password, hash_password, verify_password
from wacrm.accounts.repository import MemberRow
from wacrm.audit.service import Actor, record
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    field_error,
)
from wacrm.kit.ratelimit import RateLimiter
from wacrm.kit.text import text_problem
from wacrm.models import Account, LoginSession, Membership, Role, User
from wacrm.telemetry.metrics import auth_failed

SESSION_COOKIE = "wacrm_session"
# Roles given by invitation or role change; ownership only ever moves by transfer.
ASSIGNABLE_ROLES = (Role.ADMIN, Role.AGENT, Role.VIEWER)
_ROLE_RANK = {role: rank for rank, role in enumerate(Role)}


class Acting(Protocol):
    """Who asks for a change to the team (the dashboard's ``Member`` is one)."""

    @property
    def account_id(self) -> uuid.UUID: ...

    @property
    def user_id(self) -> uuid.UUID: ...

    @property
    def role(self) -> Role: ...

    @property
    def actor(self) -> Actor: ...


class InvalidLogin(AppError):
    status, code = 401, "unauthorized"

    def __init__(self) -> None:
        super().__init__("Invalid email or password.")


@dataclass(frozen=True)
class NewAccount:
    account: Account
    owner: User
    password: str


@dataclass(frozen=True)
class StartedSession:
    token: str
    row: repository.SessionRow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_NOT_IN_ADDRESSES = frozenset('()<>[]:;,"\\')


def normalise_email(email: str) -> str:
    """An address as stored and compared: trimmed, lower case, one plain ``local@domain``."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    labels = domain.split(".")
    if (
        len(email) > 320
        or not 1 <= len(local) <= 64
        or "@" in domain
        or len(labels) < 2
        or not all(labels)
        or text_problem(email)
        or any(ch.isspace() or ch in _NOT_IN_ADDRESSES for ch in email)
        # Invisible format characters (bidi overrides, zero-width spaces) would make an
        # address in the roster and the audit log read as another one.
        or any(unicodedata.category(ch) == "Cf" for ch in email)
    ):
        raise BadRequest(
            "Invalid email address.",
            details=[{"field": "email", "message": "enter an address like name@example.com"}],
        )
    return email


async def create_user(
    session: AsyncSession, email: str, password: str | None = None, name: str = ""
) -> tuple[User, str]:
    """A new user with the given password, or a generated one; returns the password too."""
    email = normalise_email(email)
    if await repository.find_user_by_email(session, email) is not None:
        raise Conflict(f"A user with email {email} already exists.")
    password = password or generate_password()
    user = User(email=email, name=name, password_hash=hash_password(password))
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # Created by a concurrent request after the check above (e.g. one invitation link
        # accepted twice at once): the same answer as the check's, not a 500.
        raise Conflict(f"A user with email {email} already exists.") from None
    return user, password


async def create_account(
    session: AsyncSession, name: str, owner_email: str, owner_password: str | None = None
) -> NewAccount:
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise BadRequest("Account name must be 1 to 120 characters.")
    account = Account(name=name)
    session.add(account)
    owner, password = await create_user(session, owner_email, owner_password)
    await session.flush()
    session.add(Membership(account_id=account.id, user_id=owner.id, role=Role.OWNER))
    await session.flush()
    return NewAccount(account=account, owner=owner, password=password)


async def add_member(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    if role is Role.OWNER:
        raise BadRequest("An account has exactly one owner; transfer ownership instead.")
    membership = Membership(account_id=account_id, user_id=user_id, role=role)
    session.add(membership)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("This person is already a member of the account.") from None
    return membership


async def authenticate(
    session: AsyncSession,
    limiter: RateLimiter,
    *,
    email: str,
    password: str,
    client_ip: str,
    attempts_per_minute: int,
) -> User:
    """The user whose password this is; throttled per IP and per email, one answer for all
    failures."""
    email = email.strip().lower()
    for namespace, identity in (("login-ip", client_ip), ("login-email", email)):
        status = await limiter.hit(namespace, identity, attempts_per_minute)
        if not status.allowed:
            auth_failed("login", "rate_limited")
            raise RateLimited(
                "Too many login attempts; try again later.",
                headers={"Retry-After": str(status.retry_after)},
            )
    user = await repository.find_user_by_email(session, email)
    if not verify_password(password, user.password_hash if user else None) or user is None:
        auth_failed("login", "wrong")
        raise InvalidLogin()
    return user


async def start_session(
    session: AsyncSession, user_id: uuid.UUID, account_id: uuid.UUID, ttl: timedelta
) -> StartedSession:
    """A server-side session for a member of ``account_id``."""
    now = utcnow()
    await repository.delete_expired_sessions(session, now)
    token = secrets.token_urlsafe(32)
    login_session = LoginSession(
        token_hash=hash_token(token),
        csrf_token=secrets.token_urlsafe(32),
        user_id=user_id,
        account_id=account_id,
        expires_at=now + ttl,
    )
    session.add(login_session)
    await session.flush()
    row = await repository.find_live_session(session, login_session.token_hash, now)
    assert row is not None
    return StartedSession(token=token, row=row)


async def login(
    session: AsyncSession,
    limiter: RateLimiter,
    *,
    email: str,
    password: str,
    account_id: uuid.UUID | None,
    client_ip: str,
    attempts_per_minute: int,
    ttl: timedelta,
) -> StartedSession:
    """Check the password and open a server-side session in one of the user's accounts."""
    user = await authenticate(
        session,
        limiter,
        email=email,
        password=password,
        client_ip=client_ip,
        attempts_per_minute=attempts_per_minute,
    )
    memberships = await repository.memberships_of(session, user.id)
    chosen = [m for m in memberships if account_id is None or m.account_id == account_id]
    if not chosen:
        auth_failed("login", "no_membership")
        raise InvalidLogin()
    return await start_session(session, user.id, chosen[0].account_id, ttl)


async def logout(session: AsyncSession, session_id: uuid.UUID) -> None:
    await repository.delete_session(session, session_id)


async def record_team_change(
    session: AsyncSession,
    by: Acting,
    action: str,
    target_id: uuid.UUID,
    details: dict[str, Any],
    target_type: str = "member",
) -> None:
    """The audit event of a change ``by`` made to the team, in the same transaction."""
    await record(
        session,
        account_id=by.account_id,
        actor=by.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )


def ensure_can_manage(by: Acting) -> None:
    """Owner or admin, or 403: the server enforces every role, whatever a page shows."""
    if not by.role.can_manage:
        raise Forbidden("Only an owner or admin can do this.")


def ensure_owner(by: Acting) -> None:
    if by.role is not Role.OWNER:
        raise Forbidden("Only the owner can transfer ownership.")


def assignable_role(value: str) -> Role:
    if value.strip().lower() == Role.OWNER.value:
        raise field_error("role", "ownership is not given this way: the owner transfers it")
    if value not in {role.value for role in ASSIGNABLE_ROLES}:
        raise field_error("role", "choose admin, agent or viewer")
    return Role(value)


async def list_members(session: AsyncSession, account_id: uuid.UUID) -> list[MemberRow]:
    """The account's members, owner first, then by role, oldest first within a role."""
    members = await repository.list_members(session, account_id)
    return sorted(members, key=lambda member: _ROLE_RANK[member.role])


async def get_member(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> MemberRow:
    member = await repository.get_member(session, account_id, user_id)
    if member is None:
        raise NotFound("Member")
    return member


def _leave_the_owner_alone(by: Acting, target: MemberRow, change: str) -> None:
    if target.role is not Role.OWNER:
        return
    if by.role is Role.OWNER:
        raise Conflict(f"The owner cannot be {change}: transfer ownership to another member first.")
    raise Forbidden("Only the owner can change the owner's membership.")


async def change_role(
    session: AsyncSession, by: Acting, user_id: uuid.UUID, role: str
) -> tuple[MemberRow, Role]:
    """Give a member another role (never owner); returns the member and their previous role."""
    ensure_can_manage(by)
    new_role = assignable_role(role)
    target = await get_member(session, by.account_id, user_id)
    _leave_the_owner_alone(by, target, "given another role")
    if target.role is new_role:
        return target, target.role
    if not await repository.set_role(
        session, by.account_id, user_id, was=target.role, now=new_role
    ):
        raise Conflict("This member's role changed meanwhile; reload the page and try again.")
    change = {"email": target.email, "from": target.role.value, "to": new_role.value}
    await record_team_change(session, by, "member.role_changed", user_id, change)
    return replace(target, role=new_role), target.role


async def remove_member(session: AsyncSession, by: Acting, user_id: uuid.UUID) -> MemberRow:
    """Take a member out of the account (never the owner); their sessions there end now."""
    ensure_can_manage(by)
    target = await get_member(session, by.account_id, user_id)
    _leave_the_owner_alone(by, target, "removed")
    if not await repository.delete_membership(session, by.account_id, user_id, role=target.role):
        raise Conflict("This member changed meanwhile; reload the page and try again.")
    await repository.delete_sessions_in(session, by.account_id, user_id)
    change = {"email": target.email, "role": target.role.value}
    await record_team_change(session, by, "member.removed", user_id, change)
    return target


async def transfer_ownership(session: AsyncSession, by: Acting, user_id: uuid.UUID) -> MemberRow:
    """Make another member the owner; the previous owner becomes an admin.

    Both changes happen in the caller's transaction, the demotion first: the database's
    one-owner index then guarantees exactly one owner, even against a concurrent transfer.
    """
    ensure_owner(by)
    target = await get_member(session, by.account_id, user_id)
    if target.user_id == by.user_id:
        raise Conflict("You are already the owner.")
    if not await repository.set_role(
        session, by.account_id, by.user_id, was=Role.OWNER, now=Role.ADMIN
    ):
        raise Conflict("You are no longer the owner of this account.")
    if not await repository.set_role(
        session, by.account_id, user_id, was=target.role, now=Role.OWNER
    ):
        raise Conflict("This member changed meanwhile; ownership was not transferred.")
    change = {"email": target.email, "from": by.actor.label, "previous_role": target.role.value}
    await record_team_change(session, by, "account.ownership_transferred", user_id, change)
    return replace(target, role=Role.OWNER)
