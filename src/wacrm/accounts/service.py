"""Creating accounts and members; logging people in and out."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts import repository
from wacrm.accounts.passwords import generate_password, hash_password, verify_password
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import AppError, BadRequest, Conflict, RateLimited
from wacrm.kit.ratelimit import RateLimiter
from wacrm.models import Account, LoginSession, Membership, Role, User
from wacrm.telemetry.metrics import auth_failed

SESSION_COOKIE = "wacrm_session"


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


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or any(ch.isspace() for ch in email) or len(email) > 320:
        raise BadRequest("Invalid email address.", details=[{"field": "email", "message": email}])
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
    await session.flush()
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
    await session.flush()
    return membership


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
    """Check the password and open a server-side session; throttled per IP and per email."""
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
    memberships = await repository.memberships_of(session, user.id)
    chosen = [m for m in memberships if account_id is None or m.account_id == account_id]
    if not chosen:
        auth_failed("login", "no_membership")
        raise InvalidLogin()

    now = utcnow()
    await repository.delete_expired_sessions(session, now)
    token = secrets.token_urlsafe(32)
    login_session = LoginSession(
        token_hash=hash_token(token),
        csrf_token=secrets.token_urlsafe(32),
        user_id=user.id,
        account_id=chosen[0].account_id,
        expires_at=now + ttl,
    )
    session.add(login_session)
    await session.flush()
    row = await repository.find_live_session(session, login_session.token_hash, now)
    assert row is not None
    return StartedSession(token=token, row=row)


async def logout(session: AsyncSession, session_id: uuid.UUID) -> None:
    await repository.delete_session(session, session_id)
