"""Accepting an invitation link: ``/invitations/{token}``, for people without a session.

A new person sets a name and password; someone who already logs in to wacrm with the
invited email enters that password. Either way they join with the invited role and land
logged in. A link that cannot be used (unknown, used, revoked, expired) gets a page that
says so and what to do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from wacrm.accounts import invitations
from wacrm.accounts.auth import session_ttl, set_session_cookie
from wacrm.accounts.invitations import InvitationUnavailable, OpenInvitation
from wacrm.dashboard.auth import read_form
from wacrm.dashboard.forms import CSRF_FIELD, FormErrors, PostedForm
from wacrm.dashboard.presession import BrowserToken
from wacrm.dashboard.rendering import flash, redirect, render
from wacrm.dashboard.site import HOME_PATH, INVITATIONS_PATH
from wacrm.kit.db import DbSession
from wacrm.kit.errors import AppError
from wacrm.kit.http import client_ip
from wacrm.settings import Settings

INVITATION_CSRF = BrowserToken("wacrm_invitation_csrf", INVITATIONS_PATH)
FORM_EXPIRED = "This form expired. Please try again."
LABELS = {"name": "Your name", "password": "Password", "password_again": "Password again"}

router = APIRouter(prefix=INVITATIONS_PATH)


def _unavailable(request: Request, error: InvitationUnavailable) -> Response:
    return render(
        request,
        "invitations/unavailable.html",
        member=None,
        status_code=error.status,
        title="Invitation unavailable",
        message=error.message,
    )


def _form(
    request: Request,
    token: str,
    opened: OpenInvitation,
    *,
    name: str = "",
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    return INVITATION_CSRF.page(
        request,
        "invitations/accept.html",
        status_code,
        title=f"Join {opened.account_name}",
        action=f"{INVITATIONS_PATH}/{token}",
        invitation=opened.invitation,
        account_name=opened.account_name,
        existing_user=opened.existing_user,
        name=name,
        labels=LABELS,
        errors=errors,
    )


async def _refused(
    request: Request, session: DbSession, token: str, name: str, error: AppError
) -> Response:
    """The form again with the error, read afresh: the rollback expired what was loaded."""
    try:
        opened = await invitations.open_invitation(session, token)
    except InvitationUnavailable as unavailable:
        return _unavailable(request, unavailable)
    errors = FormErrors.of(error)
    return _form(request, token, opened, name=name, errors=errors, status_code=error.status)


@router.get("/{token}")
async def invitation_page(request: Request, token: str, session: DbSession) -> Response:
    try:
        opened = await invitations.open_invitation(session, token)
    except InvitationUnavailable as error:
        return _unavailable(request, error)
    return _form(request, token, opened)


@router.post("/{token}")
async def accept_invitation(
    request: Request,
    token: str,
    session: DbSession,
    form: Annotated[PostedForm, Depends(read_form)],
) -> Response:
    try:
        opened = await invitations.open_invitation(session, token)
    except InvitationUnavailable as error:
        return _unavailable(request, error)
    name = form.value("name")
    if not INVITATION_CSRF.matches(request, form.value(CSRF_FIELD)):
        errors = FormErrors.on("", FORM_EXPIRED)
        return _form(request, token, opened, name=name, errors=errors, status_code=403)
    if form.problems:
        errors = FormErrors(dict(form.problems))
        return _form(request, token, opened, name=name, errors=errors, status_code=400)

    settings: Settings = request.app.state.settings
    try:
        if opened.existing_user:
            started = await invitations.join_as_existing_user(
                session,
                request.app.state.rate_limiter,
                token,
                password=form.value("password"),
                client_ip=client_ip(request),
                attempts_per_minute=settings.login_attempts_per_minute,
                ttl=session_ttl(settings),
            )
        else:
            started = await invitations.join_as_new_user(
                session,
                token,
                name=name,
                password=form.value("password"),
                password_again=form.value("password_again"),
                client_ip=client_ip(request),
                ttl=session_ttl(settings),
            )
    except InvitationUnavailable as error:
        await session.rollback()
        return _unavailable(request, error)
    except AppError as error:
        await session.rollback()
        failed = await _refused(request, session, token, name, error)
        failed.headers.update(error.headers)
        return failed

    response = redirect(HOME_PATH)
    set_session_cookie(request, response, started)
    INVITATION_CSRF.forget(response)
    row = started.row
    flash(request, response, f"Welcome to {row.account_name}. You joined as {row.role.value}.")
    return response
