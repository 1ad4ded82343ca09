"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real server.

Each test runs in a fresh browser context (own cookies) and its own account.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from tests.dashboard.support import PAGE, log_in, screenshot
from tests.helpers import create_account, create_key, create_member
from wacrm.kit.clock import utcnow
from wacrm.models import ApiKey, Role

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.asyncio(loop_scope="session"),
]


async def _me(server, secret: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})


async def test_create_copy_use_reload_and_revoke_a_key(page: Page, dashboard_server):
    account = await dashboard_server.arrange(lambda db: create_account(db, "Browser Co"))
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await log_in(page, account.owner_email, account.owner_password)
    await expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
    await expect(page.locator(".topbar")).to_contain_text("Browser Co")

    await page.get_by_label("Name", exact=True).fill("n8n production")
    await page.get_by_label("messages:send", exact=True).check()
    await page.get_by_label("contacts:read", exact=True).check()
    await page.get_by_label("30 days", exact=True).check()
    await page.get_by_role("button", name="Create key").click()

    await expect(page.locator("#shown-once")).to_contain_text("it will not be shown again")
    secret = await page.get_by_label("Secret key").input_value()
    assert re.fullmatch(r"wacrm_live_[0-9A-Za-z]{38}", secret)
    await page.get_by_role("button", name="Copy").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await screenshot(page, "api-keys-shown-once")

    me = await _me(dashboard_server, secret)
    assert me.status_code == 200, me.text
    key = me.json()["data"]["key"]
    assert key["name"] == "n8n production"
    assert key["scopes"] == ["messages:send", "contacts:read"]
    expires_at = datetime.fromisoformat(key["expires_at"])
    assert abs(expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)

    await page.reload()
    await expect(page.locator("#shown-once")).to_have_count(0)
    assert secret not in await page.content()
    row = page.get_by_role("row", name=re.compile("n8n production"))
    await expect(row).to_contain_text("Active")
    await expect(row).to_contain_text("messages:send")
    await expect(row).not_to_contain_text("Never used")  # /api/v1/me just used it
    await expect(row).to_contain_text(secret[:19])  # the display prefix, never more

    await row.get_by_role("link", name="Revoke n8n production").click()
    await expect(page.get_by_role("heading", name="Revoke “n8n production”?")).to_be_visible()
    await page.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("status")).to_contain_text("Revoked “n8n production”")
    await expect(row).to_contain_text("Revoked")
    assert (await _me(dashboard_server, secret)).status_code == 401
    await screenshot(page, "api-keys-revoked")


async def test_keyboard_only_login_and_create_with_visible_focus(page: Page, dashboard_server):
    account = await dashboard_server.arrange(lambda db: create_account(db, "Keys by Keyboard"))
    await page.goto(PAGE)
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.keyboard.type(account.owner_email)  # the email field has the focus on arrival
    await page.keyboard.press("Tab")
    await page.keyboard.type(account.owner_password)
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(rf"{PAGE}$"))

    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline

    for _ in range(40):
        if await page.evaluate("document.activeElement.id") == "field-name":
            break
        await page.keyboard.press("Tab")
    else:
        pytest.fail("the Name field cannot be reached with Tab")
    await page.keyboard.type("typed key")
    await page.keyboard.press("Enter")
    await expect(page.locator("#shown-once")).to_contain_text("typed key")
    assert await page.evaluate("document.activeElement.id") == "new-key-secret"

    unlabelled = await page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
             .filter(el => !(el.labels && el.labels.length) && !el.textContent.trim()
                           && !el.getAttribute('aria-label'))
             .map(el => el.outerHTML)"""
    )
    assert unlabelled == []


async def test_viewer_sees_the_roster_without_controls_and_forged_posts_get_403(
    page: Page, dashboard_server
):
    async def world(db):
        account = await create_account(db, "Viewer Co")
        key = await create_key(db, account.id, scopes=["contacts:read"], name="nightly sync")
        email, password = await create_member(db, account.id, Role.VIEWER)
        return key, email, password

    key, email, password = await dashboard_server.arrange(world)
    await log_in(page, email, password)
    row = page.get_by_role("row", name=re.compile("nightly sync"))
    await expect(row).to_contain_text("contacts:read")
    await expect(row).to_contain_text("Active")
    await expect(page.get_by_role("button", name="Create key")).to_have_count(0)
    await expect(page.get_by_role("link", name=re.compile("^(Revoke|Roll)"))).to_have_count(0)
    await expect(page.get_by_text("Only an owner or admin can create")).to_be_visible()
    assert key.plaintext not in await page.content()
    await screenshot(page, "api-keys-viewer")

    # The page's own CSRF token and cookies: only the role stands in the way.
    token = await page.locator('input[name="csrf_token"]').first.input_value()
    forged = [
        (PAGE, {"csrf_token": token, "name": "forged", "scopes": "contacts:write"}),
        (f"{PAGE}/{key.id}/revoke", {"csrf_token": token}),
        (f"{PAGE}/{key.id}/roll", {"csrf_token": token, "grace_period_hours": "0"}),
    ]
    for url, form in forged:
        response = await page.request.post(url, form=form, max_redirects=0)
        assert response.status == 403, (url, response.status)
        assert "Only an owner or admin" in await response.text()

    async def keys(db):
        return list((await db.execute(select(ApiKey))).scalars())

    mine = [k for k in await dashboard_server.arrange(keys) if k.id == key.id or k.name == "forged"]
    assert [(k.id, k.revoked_at, k.rolled_to_id) for k in mine] == [(key.id, None, None)]
    assert (await _me(dashboard_server, key.plaintext)).status_code == 200
