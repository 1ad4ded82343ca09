"""Settings → API keys: the roster for every member; create, roll and revoke for managers.

Every rule lives in ``wacrm.api_keys.service``; these handlers turn form fields into its
arguments and its errors back into the form.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wacrm.accounts.auth import Member
from wacrm.api_keys import service
from wacrm.api_keys.schemas import ApiKeyCreated, ApiKeyOut, ApiKeyRolled
from wacrm.api_keys.scopes import SCOPE_DESCRIPTIONS
from wacrm.dashboard.auth import ManagerForm, PageManager, PageMember
from wacrm.dashboard.forms import FormErrors, PostedForm
from wacrm.dashboard.rendering import flash, redirect, render
from wacrm.kit.clock import utcnow
from wacrm.kit.db import DbSession
from wacrm.kit.errors import BadRequest, Conflict, field_error

PAGE = "/settings/api-keys"
EXPIRY_CHOICES = [
    ("never", "Never"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "365 days"),
    ("custom", "Custom date"),
]
LABELS = {
    "name": "Name",
    "scopes": "Scopes",
    "expiry": "Expiry",
    "expires_on": "Custom date",
    "grace_period_hours": "Grace period",
}
# The service's field names, as this form calls them.
FORM_FIELDS = {"expires_in_days": "expiry", "expires_at": "expires_on"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HOURS = re.compile(r"\d{1,4}")

router = APIRouter(prefix=PAGE)


def _form_values(form: PostedForm | None = None) -> dict[str, Any]:
    if form is None:
        return {"name": "", "scopes": [], "expiry": "never", "expires_on": ""}
    return {
        "name": form.value("name"),
        "scopes": form.values("scopes"),
        "expiry": form.value("expiry"),
        "expires_on": form.value("expires_on"),
    }


def expiry_arguments(choice: str, custom_date: str) -> dict[str, Any]:
    """The form's expiry as the service's arguments; the service checks the range."""
    if choice == "never":
        return {}
    if choice in ("30", "90", "365"):
        return {"expires_in_days": int(choice)}
    if choice != "custom":
        raise field_error("expiry", "choose never, 30, 90 or 365 days, or a custom date")
    try:
        chosen = date.fromisoformat(custom_date) if _DATE.fullmatch(custom_date) else None
    except ValueError:
        chosen = None
    if chosen is None:
        raise field_error("expires_on", "enter a date like 2027-01-31")
    return {"expires_at": f"{chosen.isoformat()}T00:00:00+00:00"}


async def _index(
    request: Request,
    session: DbSession,
    member: Member,
    *,
    status_code: int = 200,
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    created: ApiKeyCreated | None = None,
) -> Response:
    """The roster and the New API key form; ``created`` adds the shown-once panel."""
    now = utcnow()
    today = now.date()
    keys = [ApiKeyOut.of_row(row, now) for row in await service.roster(session, member.account_id)]
    return render(
        request,
        "api_keys/index.html",
        member=member,
        status_code=status_code,
        title="API keys",
        keys=keys,
        can_manage=member.role.can_manage,
        scopes=[(scope.value, text) for scope, text in SCOPE_DESCRIPTIONS.items()],
        expiry_choices=EXPIRY_CHOICES,
        first_date=(today + timedelta(days=1)).isoformat(),
        last_date=(today + timedelta(days=service.MAX_EXPIRY_DAYS)).isoformat(),
        labels=LABELS,
        values=values or _form_values(),
        errors=errors,
        created=created,
        # The answer to a POST shows the page's own address, so a reload only reads it.
        replace_url=PAGE if created else None,
    )


@router.get("")
async def api_keys_page(request: Request, member: PageMember, session: DbSession) -> Response:
    return await _index(request, session, member)


@router.post("")
async def create_api_key(request: Request, post: ManagerForm, session: DbSession) -> Response:
    member, form = post.member, post.form
    values = _form_values(form)
    errors = FormErrors(dict(form.problems)) if form.problems else None
    if errors is None:
        try:
            created = await service.create_key(
                session,
                account_id=member.account_id,
                actor=member.actor,
                name=values["name"],
                scopes=values["scopes"],
                **expiry_arguments(values["expiry"], values["expires_on"]),
            )
        except BadRequest as error:
            await session.rollback()
            errors = FormErrors.of(error, FORM_FIELDS)
    if errors is not None:
        return await _index(request, session, member, status_code=400, values=values, errors=errors)
    shown = ApiKeyCreated.of(created, utcnow(), member.email)
    return await _index(request, session, member, status_code=201, created=shown)


@router.get("/{key_id}/revoke")
async def revoke_page(
    request: Request, key_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    entry = await service.roster_entry(session, member.account_id, key_id)
    key = ApiKeyOut.of_row(entry, utcnow())
    return render(
        request, "api_keys/revoke.html", member=member, title=f"Revoke {key.name}", key=key
    )


@router.post("/{key_id}/revoke")
async def revoke_api_key(
    request: Request, key_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    response = redirect(PAGE)
    try:
        key = await service.revoke_key(
            session, account_id=post.member.account_id, key_id=key_id, actor=post.member.actor
        )
    except Conflict as error:
        flash(request, response, error.message, "error")
        return response
    flash(request, response, f"Revoked “{key.name}” ({key.prefix}…). It no longer works.")
    return response


async def _roll_form(
    request: Request,
    session: DbSession,
    member: Member,
    key_id: uuid.UUID,
    *,
    grace: str = "0",
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    entry = await service.roster_entry(session, member.account_id, key_id)
    key = ApiKeyOut.of_row(entry, utcnow())
    return render(
        request,
        "api_keys/roll.html",
        member=member,
        status_code=status_code,
        title=f"Roll {key.name}",
        key=key,
        values={"grace_period_hours": grace},
        errors=errors,
        labels=LABELS,
    )


@router.get("/{key_id}/roll")
async def roll_page(
    request: Request, key_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    return await _roll_form(request, session, member, key_id)


@router.post("/{key_id}/roll")
async def roll_api_key(
    request: Request, key_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    member, grace = post.member, post.form.value("grace_period_hours").strip()
    try:
        if post.form.problems or not _HOURS.fullmatch(grace):
            raise field_error("grace_period_hours", "enter a whole number of hours from 0 to 168")
        created, old = await service.roll_key(
            session,
            account_id=member.account_id,
            key_id=key_id,
            actor=member.actor,
            grace_period_hours=int(grace),
        )
    except (BadRequest, Conflict) as error:
        await session.rollback()
        return await _roll_form(
            request,
            session,
            member,
            key_id,
            grace=grace,
            errors=FormErrors.of(error),
            status_code=error.status,
        )
    previous = await service.roster_entry(session, member.account_id, old.id)
    shown = ApiKeyRolled.of_roll(created, previous, utcnow(), member.email)
    return await _index(request, session, member, status_code=201, created=shown)
