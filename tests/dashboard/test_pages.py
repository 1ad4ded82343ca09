"""The dashboard's frame over plain HTTP: login, logout, redirects, CSRF, headers, error pages."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from tests.api_keys import another_client, log_in_as
from tests.dashboard.support import (
    PAGE,
    assert_no_inline_code,
    client_of_app_with,
    csrf_of,
    page_login,
    post_form,
    text_of,
)
from tests.helpers import create_account
from wacrm.accounts.service import SESSION_COOKIE
from wacrm.dashboard.routes import LOGIN_CSRF_COOKIE
from wacrm.dashboard.site import HOME_PATH, safe_next
from wacrm.models import LoginSession, Role


async def _sessions(db) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


def _cookie_attributes(response: httpx.Response, name: str) -> list[str]:
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return [part.strip().lower() for part in cookie.split(";")]


async def test_without_a_session_pages_send_the_browser_to_login_with_next(client):
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (303, "/login")

    page = await client.get(PAGE, params={"x": "1"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=" + quote(f"{PAGE}?x=1", safe="")

    posted = await post_form(client, PAGE, {"name": "k", "csrf_token": "x"})
    assert (posted.status_code, posted.headers["location"]) == (303, "/login")


async def test_login_form_logs_in_and_returns_to_next(client, db):
    account = await create_account(db)
    response = await page_login(
        client, account.owner_email, account.owner_password, next_path=f"{PAGE}?from=mail"
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{PAGE}?from=mail"
    attributes = _cookie_attributes(response, SESSION_COOKIE)
    assert {"httponly", "samesite=lax", "path=/"} <= set(attributes)
    assert "secure" not in attributes  # public base URL is http here
    assert await _sessions(db) == 1

    landed = await client.get("/")
    assert landed.headers["location"] == HOME_PATH
    again = await client.get("/login", params={"next": PAGE})
    assert (again.status_code, again.headers["location"]) == (303, PAGE)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert "Acme" in text_of(page.text)
    assert account.owner_email in text_of(page.text)


async def test_session_cookie_is_secure_when_the_public_url_is_https(settings, db, app):
    account = await create_account(db)
    https = {"base_url": "https://testserver", "public_base_url": "https://crm.example"}
    async with client_of_app_with(settings, **https) as http:
        response = await page_login(http, account.owner_email, account.owner_password)
    assert response.status_code == 303
    assert "secure" in _cookie_attributes(response, SESSION_COOKIE)


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/settings/api-keys",
        "/api/v1/me",
        "/login",
        "/settings/api-keys\r\nSet-Cookie: x=1",
        "javascript:alert(1)",
        "settings/api-keys",
    ],
)
async def test_next_must_be_a_same_site_dashboard_path(client, db, next_path):
    assert safe_next(next_path) is None
    account = await create_account(db)
    response = await page_login(
        client, account.owner_email, account.owner_password, next_path=next_path
    )
    assert (response.status_code, response.headers["location"]) == (303, HOME_PATH)


async def test_login_refuses_a_form_without_its_browser_token(client, db):
    account = await create_account(db)
    credentials = {"email": account.owner_email, "password": account.owner_password}

    missing = await post_form(client, "/login", credentials)  # no cookie, no field
    form = await client.get("/login")
    wrong = await post_form(client, "/login", {**credentials, "csrf_token": "x" * 43})
    for response in (missing, wrong):
        assert response.status_code == 403
        assert "The login form expired" in text_of(response.text)
        assert SESSION_COOKIE not in response.cookies
    assert await _sessions(db) == 0
    assert client.cookies.get(LOGIN_CSRF_COOKIE) == csrf_of(form.text)
    assert "samesite=strict" in _cookie_attributes(form, LOGIN_CSRF_COOKIE)


async def test_wrong_password_rerenders_the_form_with_the_email_and_no_session(client, db):
    account = await create_account(db)
    response = await page_login(client, account.owner_email, "wrong-password")
    assert response.status_code == 401
    assert "Invalid email or password." in text_of(response.text)
    assert f'value="{account.owner_email}"' in response.text
    assert "wrong-password" not in response.text
    assert await _sessions(db) == 0


async def test_login_is_throttled_with_a_clear_message(settings, db, app):
    account = await create_account(db)
    async with client_of_app_with(settings, login_attempts_per_minute=2) as http:
        for _ in range(2):
            assert (await page_login(http, account.owner_email, "nope")).status_code == 401
        blocked = await page_login(http, account.owner_email, account.owner_password)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert "Too many login attempts" in text_of(blocked.text)
    assert await _sessions(db) == 0


async def test_login_with_non_utf8_or_huge_fields_is_a_form_error(client, db):
    account = await create_account(db)
    form = await client.get("/login")
    token = csrf_of(form.text)
    bodies = [
        f"email=%FF%FE&password=x&csrf_token={token}",
        f"email={account.owner_email}&password={'p' * 30_000}&csrf_token={token}",
    ]
    for body in bodies:
        response = await client.post(
            "/login", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 401, response.text
        assert "Invalid email or password." in text_of(response.text)
    assert await _sessions(db) == 0


async def test_logout_needs_the_csrf_token_then_ends_the_session(client, db):
    person = await log_in_as(client, db, Role.AGENT)
    cookie = client.cookies.get(SESSION_COOKIE)

    for fields in ({}, {"csrf_token": "wrong"}):
        refused = await post_form(client, "/logout", fields)
        assert refused.status_code == 403
        assert "did not come from this dashboard" in text_of(refused.text)
    assert (await client.get(PAGE)).status_code == 200

    done = await post_form(client, "/logout", {"csrf_token": person.csrf["X-CSRF-Token"]})
    assert (done.status_code, done.headers["location"]) == (303, "/login")
    assert await _sessions(db) == 0
    login = await client.get("/login")
    assert "You are logged out." in text_of(login.text)
    assert "You are logged out." not in text_of((await client.get("/login")).text)

    client.cookies.set(SESSION_COOKIE, cookie)  # the old cookie is dead on the server
    assert (await client.get(PAGE)).status_code == 303


async def test_pages_carry_security_headers_and_no_inline_code(client, db, app):
    await log_in_as(client, db, Role.OWNER)
    responses = [
        await client.get(PAGE),
        await client.get("/settings/no-such-page"),
        await client.get("/static/dashboard.css"),
        await client.get("/"),
    ]
    async with another_client(app) as anonymous:
        responses.append(await anonymous.get("/login"))
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp, csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        if response.headers.get("content-type", "").startswith("text/html"):
            assert response.headers["cache-control"] == "no-store"
            assert_no_inline_code(response.text)
    api = await client.get("/api/v1/me")
    assert "content-security-policy" not in api.headers  # the API's answers are JSON


async def test_error_pages_are_html_on_dashboard_paths_and_json_on_the_api(client, db):
    await log_in_as(client, db, Role.OWNER)
    missing = await client.get("/settings/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Page not found" in text_of(missing.text)

    bad_id = await client.get(f"{PAGE}/not-a-uuid/revoke")
    assert bad_id.status_code == 404
    assert "Page not found" in text_of(bad_id.text)

    wrong_method = await client.delete(PAGE)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("text/html")

    api = await client.get("/api/v1/no-such-route")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


async def test_an_unexpected_error_on_a_page_is_a_friendly_500(app):
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/settings/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/settings/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in text_of(response.text)
    assert "a bug" not in response.text
    assert response.headers["x-frame-options"] == "DENY"


async def test_static_files_are_served_from_the_package(client):
    css = await client.get("/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    script = await client.get("/static/copy.js")
    assert script.status_code == 200
    assert "navigator.clipboard" in script.text
    assert (await client.get("/static/nope.js")).status_code == 404


ICON_LINK = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'


async def test_every_page_links_the_svg_icon_and_favicon_ico_finds_it(client, db, app):
    async with another_client(app) as anonymous:
        login = await anonymous.get("/login")
    await log_in_as(client, db, Role.VIEWER)
    pages = [login, await client.get(PAGE), await client.get("/settings/no-such-page")]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        assert ICON_LINK in page.text, page.url
        assert_no_inline_code(page.text)

    icon = await client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg") and "</svg>" in icon.text
    # Nothing the page's CSP would refuse, should the icon be opened on its own.
    assert not re.search(r"<script|<style|\sstyle=|\son\w+=|href=", icon.text, re.I)

    ico = await client.get("/favicon.ico")
    assert ico.status_code == 301 and ico.headers["location"] == "/static/favicon.svg"
    followed = await client.get("/favicon.ico", follow_redirects=True)
    assert followed.status_code == 200 and followed.content == icon.content
