"""Invitation links: how a new person joins an account with a role.

A link is single use and expires; its token comes from a CSPRNG, is shown once to the
inviter, and only its SHA-256 is stored. Whoever holds the link chooses a name and a
password (or, already having a wacrm login for the invited email, enters that password),
and joins the account with the invited role.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts import repository
from wacrm.accounts.repository import InvitationRow
from wacrm.accounts.service import (
    Acting,
    StartedSession,
    add_member,
    assignable_role,
    authenticate,
    create_user,
    ensure_can_manage,
    hash_token,
    normalise_email,
    record_team_change,
    start_session,
)
from wacrm.audit.service import Actor, record
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import AppError, BadRequest, Conflict, NotFound
from wacrm.kit.ratelimit import RateLimiter
from wacrm.kit.text import clean_name, text_problem
from wacrm.models import Invitation, Role

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 120
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


_UNAVAILABLE = {
    None: "This invitation link is not valid. Check that you opened the whole link, "
    "or ask for a new invitation.",
    InvitationStatus.ACCEPTED: "This invitation has already been used. If it was you, log in; "
    "otherwise ask for a new invitation.",
    InvitationStatus.REVOKED: "This invitation was withdrawn. Ask the person who invited you "
    "for a new one.",
    InvitationStatus.EXPIRED: "This invitation has expired. Ask the person who invited you "
    "for a new one.",
}


class InvitationUnavailable(AppError):
    """The link names no invitation that can still be used (unknown, used, revoked, expired)."""

    code = "invitation_unavailable"

    def __init__(self, status: InvitationStatus | None) -> None:
        super().__init__(_UNAVAILABLE.get(status) or _UNAVAILABLE[None])
        self.status = 404 if status is None else 410


@dataclass(frozen=True, repr=False)
class CreatedInvitation:
    invitation: Invitation
    token: str


@dataclass(frozen=True)
class OpenInvitation:
    invitation: Invitation
    account_name: str
    existing_user: bool


def invitation_status(invitation: Invitation, now: datetime) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return InvitationStatus.ACCEPTED
    if invitation.revoked_at is not None:
        return InvitationStatus.REVOKED
    if invitation.expires_at <= now:
        return InvitationStatus.EXPIRED
    return InvitationStatus.PENDING


def _facts(invitation: Invitation) -> dict[str, Any]:
    return {
        "email": invitation.email,
        "role": invitation.role,
        "expires_at": invitation.expires_at.isoformat(),
    }


def _checked(*checks: Callable[[], Any]) -> list[Any]:
    """Run every field's check; one 400 naming every refused field."""
    values: list[Any] = []
    problems: list[dict[str, Any]] = []
    for check in checks:
        try:
            values.append(check())
        except BadRequest as error:
            problems.extend(error.details or [])
    if problems:
        raise BadRequest("Please correct the marked fields.", details=problems)
    return values


async def invite(
    session: AsyncSession, by: Acting, *, email: str, role: str, ttl: timedelta
) -> CreatedInvitation:
    """A new invitation link for ``email`` with ``role`` (admin, agent or viewer)."""
    ensure_can_manage(by)
    email, invited_role = _checked(lambda: normalise_email(email), lambda: assignable_role(role))
    now = utcnow()
    user = await repository.find_user_by_email(session, email)
    if user is not None and await repository.get_member(session, by.account_id, user.id):
        raise Conflict(f"{email} is already a member of this account.")
    if await repository.pending_invitation_for(session, by.account_id, email, now):
        raise Conflict(
            f"{email} already has a pending invitation. Revoke it first to send a new link."
        )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        account_id=by.account_id,
        email=email,
        role=invited_role.value,
        token_hash=hash_token(token),
        invited_by_id=by.user_id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invitation)
    await session.flush()
    await record_team_change(
        session, by, "member.invited", invitation.id, _facts(invitation), "invitation"
    )
    return CreatedInvitation(invitation=invitation, token=token)


async def pending_invitations(session: AsyncSession, account_id: uuid.UUID) -> list[InvitationRow]:
    return await repository.pending_invitations(session, account_id, utcnow())


async def revoke_invitation(
    session: AsyncSession, by: Acting, invitation_id: uuid.UUID
) -> Invitation:
    """Withdraw an unused invitation: its link stops working at once."""
    ensure_can_manage(by)
    invitation = await repository.get_invitation(session, by.account_id, invitation_id)
    if invitation is None:
        raise NotFound("Invitation")
    if not await repository.mark_invitation_revoked(
        session, by.account_id, invitation_id, by.user_id, utcnow()
    ):
        raise Conflict("This invitation was already used or revoked.")
    await session.refresh(invitation)
    await record_team_change(
        session, by, "invitation.revoked", invitation.id, _facts(invitation), "invitation"
    )
    return invitation


async def open_invitation(session: AsyncSession, token: str) -> OpenInvitation:
    """The invitation a link names, if it can still be used; else InvitationUnavailable."""
    found = None
    if _TOKEN_SHAPE.fullmatch(token):
        found = await repository.find_invitation_by_token(session, hash_token(token))
    if found is None:
        raise InvitationUnavailable(None)
    invitation, account_name = found
    status = invitation_status(invitation, utcnow())
    if status is not InvitationStatus.PENDING:
        raise InvitationUnavailable(status)
    existing = await repository.find_user_by_email(session, invitation.email)
    return OpenInvitation(invitation, account_name, existing_user=existing is not None)


def _new_password(password: str, password_again: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise _field("password", f"use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    problem = text_problem(password)
    if problem:
        raise _field("password", problem)
    if password_again != password:
        raise _field("password_again", "does not match the password")
    return password


def _name(name: str) -> str:
    try:
        return clean_name(name, max_length=MAX_NAME_LENGTH)
    except ValueError as error:
        raise _field("name", str(error)) from None


def _field(name: str, message: str) -> BadRequest:
    return BadRequest(message, details=[{"field": name, "message": message}])


async def join_as_new_user(
    session: AsyncSession,
    token: str,
    *,
    name: str,
    password: str,
    password_again: str,
    client_ip: str,
    ttl: timedelta,
) -> StartedSession:
    """Create the invited person's login and join the account; returns their new session."""
    opened = await open_invitation(session, token)
    if opened.existing_user:
        raise Conflict("There is already a wacrm login for this email: log in with it instead.")
    name, password = _checked(lambda: _name(name), lambda: _new_password(password, password_again))
    user, _ = await create_user(session, opened.invitation.email, password, name)
    return await _join(session, opened.invitation, user.id, client_ip, ttl)


async def join_as_existing_user(
    session: AsyncSession,
    limiter: RateLimiter,
    token: str,
    *,
    password: str,
    client_ip: str,
    attempts_per_minute: int,
    ttl: timedelta,
) -> StartedSession:
    """The invited email already logs in elsewhere: its password joins this account too."""
    opened = await open_invitation(session, token)
    user = await authenticate(
        session,
        limiter,
        email=opened.invitation.email,
        password=password,
        client_ip=client_ip,
        attempts_per_minute=attempts_per_minute,
    )
    return await _join(session, opened.invitation, user.id, client_ip, ttl)


async def _join(
    session: AsyncSession,
    invitation: Invitation,
    user_id: uuid.UUID,
    client_ip: str,
    ttl: timedelta,
) -> StartedSession:
    now = utcnow()
    if not await repository.claim_invitation(session, invitation.id, user_id, now):
        await session.refresh(invitation)
        raise InvitationUnavailable(invitation_status(invitation, now))
    role = Role(invitation.role)
    await add_member(session, invitation.account_id, user_id, role)
    await record(
        session,
        account_id=invitation.account_id,
        actor=Actor(user_id=user_id, label=invitation.email, client_ip=client_ip),
        action="member.joined",
        target_type="member",
        target_id=user_id,
        details={
            "email": invitation.email,
            "role": role.value,
            "invitation_id": str(invitation.id),
        },
    )
    return await start_session(session, user_id, invitation.account_id, ttl)
