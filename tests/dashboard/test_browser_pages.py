"""The inbox and the webhooks pages in a real browser against a real server, with a worker.

The inbox loop: a customer writes through the sandbox (a signed webhook, as
``wacrm sandbox inbound`` posts it), the conversation appears, the agent replies, and the
sandbox's status callbacks turn the reply's ticks to read — all without a reload.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.dashboard.support import log_in, screenshot
from tests.helpers import create_account, create_member
from tests.webhooks.receivers import Receiver
from tests.webhooks.support import verify_both
from wacrm.channels.service import add_sandbox_channel
from wacrm.models import Role

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("dashboard_worker"),
]

CUSTOMER = "+14155550123"
# Ticks can take a refresh period or two to arrive.
SLOW = 15_000


async def test_a_customer_writes_the_agent_replies_and_the_ticks_turn_read(
    page: Page, dashboard_server
):
    async def world(db):
        account = await create_account(db, "Inbox Co")
        channel = await add_sandbox_channel(db, dashboard_server.settings, account_id=account.id)
        email, password = await create_member(db, account.id, Role.AGENT)
        return channel.phone_number_id, email, password

    phone_number_id, email, password = await dashboard_server.arrange(world)
    await log_in(page, email, password, next_path="/inbox")
    await expect(page.get_by_text("No conversations here yet.")).to_be_visible()

    async with httpx.AsyncClient(base_url=dashboard_server.url) as http:
        inbound = await http.post(
            "/sandbox/inbound",
            headers={"Authorization": f"Bearer {dashboard_server.settings.sandbox_access_token}"},
            json={
                "phone_number_id": phone_number_id,
                "from": CUSTOMER,
                "text": "Hi! Is my order A-17 ready?",
                "name": "Ana Lima",
            },
        )
    assert inbound.status_code == 200 and inbound.json()["webhook_status"] == 200, inbound.text

    row = page.get_by_role("row", name=re.compile("Ana Lima"))
    await expect(row).to_contain_text("1 unread", timeout=SLOW)  # the list refreshed itself
    await row.get_by_role("link", name="Ana Lima").click()
    await expect(page.get_by_role("heading", name="Ana Lima")).to_be_visible()
    await expect(page.locator("#thread")).to_contain_text("Hi! Is my order A-17 ready?")

    await page.get_by_role("textbox", name="Message").fill(
        "Yes, it ships today. Tracking: A-17-XYZ"
    )
    await page.get_by_role("button", name="Send").click()
    reply = page.locator("#thread .message.outbound").last
    await expect(reply).to_contain_text("Yes, it ships today.")
    await expect(reply.locator(".tick-read")).to_be_visible(timeout=SLOW)
    await expect(reply).to_contain_text("Read")
    await screenshot(page, "inbox-conversation")

    await page.get_by_role("link", name="Inbox", exact=True).first.click()
    await expect(page.get_by_role("row", name=re.compile("Ana Lima"))).to_contain_text("0")


async def test_create_a_webhook_see_its_secret_once_and_its_test_delivery(
    page: Page, dashboard_server
):
    account = await dashboard_server.arrange(lambda db: create_account(db, "Hooks Co"))
    async with Receiver() as receiver:
        await log_in(page, account.owner_email, account.owner_password, "/settings/webhooks")
        await page.get_by_label("URL", exact=True).fill(receiver.url)
        await page.get_by_label("message.received", exact=True).check()
        await page.get_by_role("button", name="Create webhook").click()

        await expect(page.locator("#shown-once")).to_contain_text("it will not be shown again")
        secret = await page.get_by_role("textbox", name="Signing secret").input_value()
        assert secret.startswith("whsec_")
        await page.reload()
        await expect(page.locator("#shown-once")).to_have_count(0)
        assert secret not in await page.content()

        await page.get_by_role("link", name=receiver.url).click()
        await page.get_by_role("button", name="Send test").click()
        await expect(page.get_by_role("status")).to_contain_text("webhook.test")
        delivery = page.locator("#deliveries tr").first
        await expect(delivery).to_contain_text("webhook.test")
        await expect(delivery).to_contain_text("Succeeded", timeout=SLOW)
        await expect(delivery).to_contain_text("200")
        await expect(delivery).to_contain_text(re.compile(r"\d+ ms"))
        await screenshot(page, "webhooks-delivered")

        [received] = receiver.received
        payload = verify_both(secret, received)
        assert payload["event"] == "webhook.test"
        assert payload["account_id"] == str(account.id)
