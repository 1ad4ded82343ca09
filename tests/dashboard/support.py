"""Helpers for dashboard tests: logging in through the pages, reading pages, posting forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.async_api import Page

from wacrm.app import create_app
from wacrm.dashboard.forms import CSRF_FIELD
from wacrm.settings import Settings

PAGE = "/settings/api-keys"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
_CSRF = re.compile(rf'name="{CSRF_FIELD}" value="([^"]*)"')
_SHOWN_SECRET = re.compile(r'<input id="new-key-secret"[^>]*\svalue="([^"]*)"')
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
_INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
_EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return unescape(found.group(1))


def shown_secret(html: str) -> str:
    """The plaintext in the shown-once panel's read-only field."""
    found = _SHOWN_SECRET.search(html)
    assert found, "no shown-once panel on the page"
    return unescape(found.group(1))


def text_of(html: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def assert_no_inline_code(html: str) -> None:
    """The CSP forbids inline script and style: a page that relied on them would break."""
    assert not _INLINE_SCRIPT.search(html), "inline <script>"
    assert not _INLINE_STYLE.search(html), "inline style"
    assert not _EVENT_HANDLER.search(html), "inline event handler"


@asynccontextmanager
async def client_of_app_with(
    settings: Settings, base_url: str = "http://testserver", **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second app, built from ``settings`` with ``changes`` (e.g. a low limit)."""
    app = create_app(settings.model_copy(update=changes))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http
    finally:
        await app.state.database.dispose()


async def page_login(
    client: httpx.AsyncClient, email: str, password: str, next_path: str = ""
) -> httpx.Response:
    """Log in through the login form, as a browser does: GET the form, then POST it."""
    form = await client.get("/login", params={"next": next_path} if next_path else None)
    assert form.status_code == 200, form.text
    return await post_form(
        client,
        "/login",
        {"email": email, "password": password, "next": next_path, CSRF_FIELD: csrf_of(form.text)},
    )


async def post_form(
    client: httpx.AsyncClient, url: str, fields: dict[str, Any] | list[tuple[str, str]]
) -> httpx.Response:
    """POST fields urlencoded (a list of pairs for repeated fields, e.g. scopes)."""
    return await client.post(url, content=urlencode(fields, doseq=True), headers=FORM_HEADERS)


async def screenshot(tab: Page, name: str) -> Path:
    """Save what the page shows now as test-artifacts/NAME.png (never committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    await tab.screenshot(path=str(path), full_page=True)
    return path


async def log_in(tab: Page, email: str, password: str, next_path: str = PAGE) -> None:
    """Log in through the form, by keyboard and clicks as a person would, landing on
    ``next_path`` (as after following a link to it)."""
    await tab.goto(f"/login?{urlencode({'next': next_path})}")
    await tab.get_by_label("Email").fill(email)
    await tab.get_by_label("Password").fill(password)
    await tab.get_by_role("button", name="Log in").click()
    await tab.wait_for_url(re.compile(rf".*{re.escape(next_path)}$"))
