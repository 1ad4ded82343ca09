"""The dashboard's router: login, logout and the landing page; each section adds its pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from wacrm.accounts.auth import log_in, log_out
from wacrm.accounts.service import InvalidLogin
from wacrm.dashboard.api_keys_routes import router as api_keys_router
from wacrm.dashboard.audit_log_routes import router as audit_log_router
from wacrm.dashboard.auth import MaybeMember, MemberForm, read_form
from wacrm.dashboard.contacts_routes import router as contacts_router
from wacrm.dashboard.forms import CSRF_FIELD, FormErrors, PostedForm
from wacrm.dashboard.inbox_routes import router as inbox_router
from wacrm.dashboard.invitations_routes import router as invitations_router
from wacrm.dashboard.numbers_routes import router as numbers_router
from wacrm.dashboard.presession import BrowserToken
from wacrm.dashboard.rendering import flash, redirect
from wacrm.dashboard.site import FAVICON_PATH, HOME_PATH, LOGIN_PATH, LOGOUT_PATH, safe_next
from wacrm.dashboard.team_routes import router as team_router
from wacrm.dashboard.webhooks_routes import router as webhooks_router
from wacrm.kit.db import DbSession
from wacrm.kit.errors import AppError

LOGIN_CSRF = BrowserToken("wacrm_login_csrf", LOGIN_PATH)
LOGIN_CSRF_COOKIE = LOGIN_CSRF.cookie
LOGIN_FORM_EXPIRED = "The login form expired. Please try again."

router = APIRouter(include_in_schema=False)
router.include_router(api_keys_router)
router.include_router(team_router)
router.include_router(audit_log_router)
router.include_router(invitations_router)
router.include_router(inbox_router)
router.include_router(contacts_router)
router.include_router(numbers_router)
router.include_router(webhooks_router)


def static_files() -> StaticFiles:
    return StaticFiles(directory=Path(__file__).parent / "static")


@router.get("/")
async def home(member: MaybeMember) -> Response:
    return redirect(HOME_PATH if member else LOGIN_PATH)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico before (or without) reading a page's icon link."""
    return RedirectResponse(FAVICON_PATH, status_code=301)


@router.get(LOGIN_PATH)
async def login_page(request: Request, member: MaybeMember, next: str = "") -> Response:
    if member is not None:
        return redirect(safe_next(next) or HOME_PATH)
    return _login_form(request, next_path=safe_next(next) or "")


@router.post(LOGIN_PATH)
async def login(
    request: Request, session: DbSession, form: Annotated[PostedForm, Depends(read_form)]
) -> Response:
    email, next_path = form.value("email"), safe_next(form.value("next")) or ""
    if not LOGIN_CSRF.matches(request, form.value(CSRF_FIELD)):
        return _login_form(
            request, email, next_path, FormErrors.on("", LOGIN_FORM_EXPIRED), status_code=403
        )
    response = redirect(next_path or HOME_PATH)
    try:
        if form.problems:
            raise InvalidLogin()
        await log_in(request, response, session, email=email, password=form.value("password"))
    except AppError as error:
        failed = _login_form(
            request, email, next_path, FormErrors.on("", error.message), error.status
        )
        failed.headers.update(error.headers)
        return failed
    LOGIN_CSRF.forget(response)
    return response


def _login_form(
    request: Request,
    email: str = "",
    next_path: str = "",
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    return LOGIN_CSRF.page(
        request,
        "login.html",
        status_code,
        title="Log in",
        email=email,
        next_path=next_path,
        errors=errors,
    )


@router.post(LOGOUT_PATH)
async def logout(request: Request, post: MemberForm, session: DbSession) -> Response:
    response = redirect(LOGIN_PATH)
    await log_out(post.member, response, session)
    flash(request, response, "You are logged out.")
    return response
