"""Settings → Team in a real browser (Debian's Chromium through Playwright) on a real server."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.dashboard.support import log_in, screenshot
from tests.helpers import create_account, create_member
from wacrm.dashboard.site import HOME_PATH
from wacrm.models import Role

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.asyncio(loop_scope="session"),
]


async def test_owner_makes_a_member_admin_and_the_roster_shows_it(page: Page, dashboard_server):
    async def world(db):
        account = await create_account(db, "Roles Co")
        email, _ = await create_member(db, account.id, Role.AGENT)
        return account, email

    account, agent = await dashboard_server.arrange(world)
    await log_in(page, account.owner_email, account.owner_password)
    await page.get_by_role("link", name="Team").click()
    await expect(page.get_by_role("heading", name="Team", exact=True)).to_be_visible()

    row = page.get_by_role("row", name=re.compile(re.escape(agent)))
    await expect(row).to_contain_text("Agent")
    await row.get_by_label(f"Role of {agent}").select_option("admin")
    await row.get_by_role("button", name=f"Change role of {agent}").click()

    await expect(page.get_by_role("status")).to_contain_text(f"{agent} is now an admin.")
    row = page.get_by_role("row", name=re.compile(re.escape(agent)))
    await expect(row.locator(".badge")).to_have_text("Admin")
    await screenshot(page, "team-role-changed")


async def test_invite_then_join_from_a_fresh_browser_with_the_invited_role(
    page: Page, dashboard_server, browser
):
    account = await dashboard_server.arrange(lambda db: create_account(db, "Invite Co"))
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await log_in(page, account.owner_email, account.owner_password)
    await page.goto("/settings/team")
    await page.get_by_label("Email", exact=True).fill("browser.invitee@example.com")
    await page.get_by_label(re.compile("^Viewer")).check()
    await page.get_by_role("button", name="Create invitation link").click()

    await expect(page.locator("#shown-once")).to_contain_text("it will not be shown again")
    link = await page.get_by_label("Invitation link").input_value()
    assert re.fullmatch(rf"{re.escape(dashboard_server.url)}/invitations/[A-Za-z0-9_-]{{43}}", link)
    await page.get_by_role("button", name="Copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == link
    await screenshot(page, "team-invitation-link")

    fresh = await browser.new_context(viewport={"width": 1280, "height": 900})
    fresh.set_default_timeout(10_000)
    try:
        newcomer = await fresh.new_page()
        await newcomer.goto(link)
        await expect(newcomer.get_by_role("heading", name="Join Invite Co")).to_be_visible()
        await expect(newcomer.get_by_text("as viewer")).to_be_visible()
        await newcomer.get_by_label("Your name").fill("Browser Invitee")
        await newcomer.get_by_label("Password", exact=True).fill("browser-password-1")
        await newcomer.get_by_label("Password again").fill("browser-password-1")
        await newcomer.get_by_role("button", name="Join Invite Co").click()

        await newcomer.wait_for_url(re.compile(rf"{HOME_PATH}$"))
        await expect(newcomer.get_by_role("status")).to_contain_text("You joined as viewer.")
        topbar = newcomer.locator(".topbar")
        await expect(topbar).to_contain_text("Invite Co")
        await expect(topbar).to_contain_text("Browser Invitee")
        await expect(topbar.locator(".role")).to_have_text("viewer")
        await newcomer.goto(f"{dashboard_server.url}/settings/api-keys")
        await expect(newcomer.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
        await expect(newcomer.get_by_role("button", name="Create key")).to_have_count(0)
        await screenshot(newcomer, "team-joined-as-viewer")

        await newcomer.goto(link)
        await expect(newcomer.get_by_text("already been used")).to_be_visible()
    finally:
        await fresh.close()

    await page.reload()
    row = page.get_by_role("row", name=re.compile("Browser Invitee"))
    await expect(row.locator(".badge")).to_have_text("Viewer")
    await expect(page.get_by_text("No pending invitations.")).to_be_visible()
