"""Rendering pages: one Jinja2 environment, the shared layout's context, and flash messages."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from wacrm.accounts.auth import Member
from wacrm.dashboard.forms import CSRF_FIELD
from wacrm.dashboard.site import NAV, NavLink
from wacrm.kit.crypto import decrypt, encrypt
from wacrm.settings import Settings

FLASH_COOKIE = "wacrm_flash"
FlashKind = Literal["success", "error"]

environment = Environment(
    loader=PackageLoader("wacrm.dashboard", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(moment: datetime | None, empty: str = "—") -> str:
    return empty if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _breakable_email(email: str) -> Markup:
    """Lets a long address wrap after its "@" rather than mid-word in narrow table cells."""
    return Markup("@<wbr>").join(escape(part) for part in email.split("@"))


environment.filters["when"] = _when
environment.filters["email"] = _breakable_email


def render(
    request: Request,
    template: str,
    *,
    member: Member | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page in the shared layout. ``member`` None renders it without the signed-in header."""
    flash = _read_flash(request)
    page = environment.get_template(template).render(
        {
            "title": "",
            "replace_url": None,
            **context,
            "request": request,
            "member": member,
            "csrf_field": CSRF_FIELD,
            "nav": _nav(member),
            "flash": flash,
        }
    )
    response = HTMLResponse(page, status_code=status_code)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def render_fragment(
    request: Request, template: str, *, member: Member, **context: Any
) -> HTMLResponse:
    """A piece of a page (no layout, no flash) for a script that refreshes it in place."""
    page = environment.get_template(template).render(
        {**context, "request": request, "member": member, "csrf_field": CSRF_FIELD}
    )
    return HTMLResponse(page)


def _nav(member: Member | None) -> dict[str, list[NavLink]]:
    if member is None:
        return {}
    sections: dict[str, list[NavLink]] = {}
    for link in NAV:
        if link.visible_to(member.role):
            sections.setdefault(link.section, []).append(link)
    return sections


def redirect(url: str) -> RedirectResponse:
    """After a successful POST: 303, so that reloading the next page does not post again."""
    return RedirectResponse(url, status_code=303)


def flash(request: Request, response: Response, text: str, kind: FlashKind = "success") -> None:
    """A one-time message for the next page this browser renders (e.g. after a redirect).

    Encrypted and authenticated with the deployment secret, so nobody else can plant one.
    """
    settings: Settings = request.app.state.settings
    value = encrypt(settings.secret_key, json.dumps({"kind": kind, "text": text}))
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=120,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )


def _read_flash(request: Request) -> dict[str, str] | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    settings: Settings = request.app.state.settings
    try:
        message = json.loads(decrypt(settings.secret_key, value))
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("kind") not in ("success", "error"):
        return None
    return {"kind": str(message["kind"]), "text": str(message.get("text", ""))}
