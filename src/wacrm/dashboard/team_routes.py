"""Settings → Team: members and roles, invitation links, removal, ownership transfer.

Every member sees the roster; owners and admins get the controls. Every rule lives in
``wacrm.accounts.service`` and ``wacrm.accounts.invitations`` (which check the role
again): these handlers turn form fields into their arguments and errors into the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wacrm.accounts import invitations, service
from wacrm.accounts.auth import Member
from wacrm.accounts.invitations import CreatedInvitation
from wacrm.accounts.repository import MemberRow
from wacrm.dashboard.auth import ManagerForm, PageManager, PageMember
from wacrm.dashboard.forms import FormErrors, PostedForm
from wacrm.dashboard.rendering import flash, redirect, render
from wacrm.dashboard.site import INVITATIONS_PATH
from wacrm.kit.db import DbSession
from wacrm.kit.errors import BadRequest, Conflict
from wacrm.models import Role
from wacrm.settings import Settings

PAGE = "/settings/team"
LABELS = {"email": "Email", "role": "Role"}
ROLE_CHOICES = [
    (Role.ADMIN.value, "Admin — manages keys, team, numbers and webhooks"),
    (Role.AGENT.value, "Agent — works the inbox and contacts"),
    (Role.VIEWER.value, "Viewer — reads only"),
]

T = TypeVar("T")

router = APIRouter(prefix=PAGE)


def _invite_values(form: PostedForm | None = None) -> dict[str, str]:
    if form is None:
        return {"email": "", "role": Role.AGENT.value}
    return {"email": form.value("email"), "role": form.value("role")}


def invitation_link(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}{INVITATIONS_PATH}/{token}"


async def _index(
    request: Request,
    session: DbSession,
    member: Member,
    *,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    invite_errors: FormErrors | None = None,
    roster_error: str = "",
    created: CreatedInvitation | None = None,
) -> Response:
    """The roster, pending invitations and the invite form; ``created`` shows its link once."""
    settings: Settings = request.app.state.settings
    return render(
        request,
        "team/index.html",
        member=member,
        status_code=status_code,
        title="Team",
        members=await service.list_members(session, member.account_id),
        pending=await invitations.pending_invitations(session, member.account_id),
        can_manage=member.role.can_manage,
        is_owner=member.role is Role.OWNER,
        role_choices=ROLE_CHOICES,
        invitation_days=settings.invitation_ttl_days,
        labels=LABELS,
        values=values or _invite_values(),
        invite_errors=invite_errors,
        roster_error=roster_error,
        created=created,
        created_link=invitation_link(settings, created.token) if created else "",
        # The answer to a POST shows the page's own address, so a reload only reads it.
        replace_url=PAGE if created else None,
    )


@router.get("")
async def team_page(request: Request, member: PageMember, session: DbSession) -> Response:
    return await _index(request, session, member)


@router.post("/invitations")
async def invite(request: Request, post: ManagerForm, session: DbSession) -> Response:
    member, form = post.member, post.form
    values = _invite_values(form)
    errors, status = (FormErrors(dict(form.problems)), 400) if form.problems else (None, 400)
    if errors is None:
        settings: Settings = request.app.state.settings
        try:
            created = await invitations.invite(
                session,
                member,
                email=values["email"],
                role=values["role"],
                ttl=timedelta(days=settings.invitation_ttl_days),
            )
        except (BadRequest, Conflict) as error:
            await session.rollback()
            errors, status = FormErrors.of(error), error.status
    if errors is not None:
        return await _index(
            request, session, member, status_code=status, values=values, invite_errors=errors
        )
    return await _index(request, session, member, status_code=201, created=created)


async def _then_back(
    request: Request,
    session: DbSession,
    member: Member,
    change: Awaitable[T],
    done: Callable[[T], str],
) -> Response:
    """Make one change to the team: back to the roster saying ``done(result)``, or the
    roster again with the reason it was refused (and nothing changed)."""
    try:
        result = await change
    except (BadRequest, Conflict) as error:
        await session.rollback()
        return await _index(
            request, session, member, status_code=error.status, roster_error=error.message
        )
    response = redirect(PAGE)
    flash(request, response, done(result))
    return response


@router.post("/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request, invitation_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    return await _then_back(
        request,
        session,
        post.member,
        invitations.revoke_invitation(session, post.member, invitation_id),
        lambda revoked: f"Revoked the invitation for {revoked.email}. Its link no longer works.",
    )


@router.post("/members/{user_id}/role")
async def change_role(
    request: Request, user_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    # A field that was not acceptable text reads as "", which the service refuses.
    role = post.form.value("role")
    return await _then_back(
        request,
        session,
        post.member,
        service.change_role(session, post.member, user_id, role),
        lambda change: f"{change[0].email} {_role_news(*change)}.",
    )


def _role_news(member: MemberRow, previous: Role) -> str:
    role = member.role.value
    article = "an" if role[0] in "aeiou" else "a"
    return f"already is {article} {role}" if member.role is previous else f"is now {article} {role}"


async def _confirm_page(
    request: Request, session: DbSession, member: Member, user_id: uuid.UUID, template: str
) -> Response:
    target = await service.get_member(session, member.account_id, user_id)
    return render(request, template, member=member, title="Team", target=target)


@router.get("/members/{user_id}/remove")
async def remove_page(
    request: Request, user_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    return await _confirm_page(request, session, member, user_id, "team/remove.html")


@router.post("/members/{user_id}/remove")
async def remove_member(
    request: Request, user_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    return await _then_back(
        request,
        session,
        post.member,
        service.remove_member(session, post.member, user_id),
        lambda removed: f"Removed {removed.email} from the account. Their sessions ended.",
    )


@router.get("/members/{user_id}/transfer-ownership")
async def transfer_page(
    request: Request, user_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    service.ensure_owner(member)
    return await _confirm_page(request, session, member, user_id, "team/transfer.html")


@router.post("/members/{user_id}/transfer-ownership")
async def transfer_ownership(
    request: Request, user_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    return await _then_back(
        request,
        session,
        post.member,
        service.transfer_ownership(session, post.member, user_id),
        lambda owner: f"{owner.email} is now the owner. You are an admin.",
    )
