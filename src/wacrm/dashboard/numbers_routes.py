"""Settings → WhatsApp numbers: every member sees the account's numbers; owners and admins
connect a Meta number or a sandbox one and choose the default.

The access token and app secret go in through the form and never come back out: the page
says only that they are set. Every rule lives in ``wacrm.channels.service``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts.auth import Member
from wacrm.channels import service as channels
from wacrm.dashboard.auth import ManagerForm, PageMember
from wacrm.dashboard.forms import FormErrors, PostedForm, refuse_problems
from wacrm.dashboard.rendering import flash, redirect, render
from wacrm.kit.db import DbSession
from wacrm.kit.errors import BadRequest, Conflict
from wacrm.models import ChannelKind
from wacrm.settings import Settings

PAGE = "/settings/numbers"
FIELDS = ("phone_number_id", "waba_id", "display_phone", "access_token", "app_secret")
LABELS = {
    "phone_number_id": "Phone number ID",
    "waba_id": "WhatsApp Business Account ID",
    "display_phone": "Phone number",
    "access_token": "Access token",
    "app_secret": "App secret",
}

router = APIRouter(prefix=PAGE)


async def _index(
    request: Request,
    session: AsyncSession,
    member: Member,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    settings: Settings = request.app.state.settings
    # Secrets are never echoed back into a refused form: they are typed again.
    shown = {name: (values or {}).get(name, "") for name in FIELDS[:3]}
    return render(
        request,
        "numbers/index.html",
        member=member,
        status_code=status_code,
        title="WhatsApp numbers",
        numbers=await channels.list_channels(session, member.account_id),
        can_manage=member.role.can_manage,
        sandbox_enabled=settings.sandbox_enabled,
        webhook_url=f"{settings.public_base_url.rstrip('/')}/webhooks/whatsapp",
        values={**shown, "make_default": bool((values or {}).get("make_default"))},
        errors=errors,
        labels=LABELS,
    )


@router.get("")
async def numbers_page(request: Request, member: PageMember, session: DbSession) -> Response:
    return await _index(request, session, member)


def _values(form: PostedForm) -> dict[str, Any]:
    return {
        **{name: form.value(name) for name in FIELDS},
        "make_default": form.value("make_default") == "on",
    }


@router.post("")
async def add_number(request: Request, post: ManagerForm, session: DbSession) -> Response:
    member, values = post.member, _values(post.form)
    try:
        refuse_problems(post.form)
        channel = await channels.add_channel(
            session,
            request.app.state.settings,
            account_id=member.account_id,
            kind=ChannelKind.META,
            make_default=values["make_default"],
            **{name: values[name] for name in FIELDS},
        )
    except (BadRequest, Conflict) as error:
        await session.rollback()
        return await _index(
            request,
            session,
            member,
            values=values,
            errors=FormErrors.of(error),
            status_code=error.status,
        )
    response = redirect(PAGE)
    flash(request, response, f"Connected {channel.display_phone}.")
    return response


@router.post("/sandbox")
async def add_sandbox_number(request: Request, post: ManagerForm, session: DbSession) -> Response:
    channel = await channels.add_sandbox_channel(
        session, request.app.state.settings, account_id=post.member.account_id
    )
    response = redirect(PAGE)
    flash(request, response, f"Connected the sandbox number {channel.display_phone}.")
    return response


@router.post("/{channel_id}/default")
async def make_default(
    request: Request, channel_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    channel = await channels.set_default_channel(session, post.member.account_id, channel_id)
    response = redirect(PAGE)
    flash(request, response, f"{channel.display_phone} is now the default number.")
    return response
