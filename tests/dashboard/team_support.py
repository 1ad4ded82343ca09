"""Helpers for the Team, invitation and audit-log page tests: reading rows, inviting."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api_keys import Person
from tests.dashboard.support import csrf_of, post_form
from wacrm.models import AuditEvent, Invitation, LoginSession, Membership, User

TEAM = "/settings/team"
AUDIT_LOG = "/settings/audit-log"
_LINK = re.compile(r'<input id="invitation-link"[^>]*\svalue="([^"]*)"')


def csrf(person: Person) -> str:
    return person.csrf["X-CSRF-Token"]


async def user_id(db: AsyncSession, email: str) -> uuid.UUID:
    await db.rollback()
    found = await db.scalar(select(User.id).where(User.email == email.lower()))
    assert found is not None, email
    return found


async def roles(db: AsyncSession, account_id: uuid.UUID) -> dict[str, str]:
    """Email → role of every member of the account, as the database holds them now."""
    await db.rollback()
    rows = await db.execute(
        select(User.email, Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account_id)
    )
    return {email: role for email, role in rows.all()}


async def invitation_rows(db: AsyncSession, account_id: uuid.UUID) -> list[Invitation]:
    await db.rollback()
    statement = (
        select(Invitation)
        .where(Invitation.account_id == account_id)
        .order_by(Invitation.created_at)
        .execution_options(populate_existing=True)
    )
    return list((await db.execute(statement)).scalars())


async def audit_actions(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    await db.rollback()
    statement = (
        select(AuditEvent.action)
        .where(AuditEvent.account_id == account_id)
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return list((await db.execute(statement)).scalars())


async def sessions_of(db: AsyncSession, email: str) -> int:
    await db.rollback()
    statement = (
        select(func.count())
        .select_from(LoginSession)
        .join(User, User.id == LoginSession.user_id)
        .where(User.email == email.lower())
    )
    return int(await db.scalar(statement) or 0)


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must leave alone."""

    members: dict[str, str]
    invitations: list[tuple[Any, ...]]
    audit: list[str]
    users: int
    sessions: int


async def snapshot(db: AsyncSession, account_id: uuid.UUID) -> Snapshot:
    invitations = [
        (i.id, i.email, i.role, i.accepted_at, i.revoked_at)
        for i in await invitation_rows(db, account_id)
    ]
    return Snapshot(
        members=await roles(db, account_id),
        invitations=invitations,
        audit=await audit_actions(db, account_id),
        users=int(await db.scalar(select(func.count()).select_from(User)) or 0),
        sessions=int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0),
    )


def invitation_link(html: str) -> str:
    """The link in the shown-once panel, as a path on this server."""
    found = _LINK.search(html)
    assert found, "no invitation link on the page"
    link = unescape(found.group(1))
    path = re.sub(r"^https?://[^/]+", "", link)
    assert path.startswith("/invitations/"), link
    return path


async def invite(client: httpx.AsyncClient, person: Person, email: str, role: str = "agent") -> str:
    """Invite through the Team page; returns the link's path."""
    response = await post_form(
        client, f"{TEAM}/invitations", {"csrf_token": csrf(person), "email": email, "role": role}
    )
    assert response.status_code == 201, response.text
    return invitation_link(response.text)


async def accept_as_new(
    client: httpx.AsyncClient, link: str, name: str = "New Person", password: str = "new-password-1"
) -> httpx.Response:
    """Open the link in ``client`` and join with a name and password."""
    form = await client.get(link)
    assert form.status_code == 200, form.text
    fields = {"name": name, "password": password, "password_again": password}
    return await post_form(client, link, {**fields, "csrf_token": csrf_of(form.text)})
