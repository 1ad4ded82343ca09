"""Settings → Webhooks over plain HTTP: owners and admins only; the secret shown once at
creation and rotation; enable, disable, test, delete, the log and redeliver; every refusal."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.api_keys import another_client, dump_database, log_in_as
from tests.dashboard.support import (
    assert_no_inline_code,
    client_of_app_with,
    post_form,
    text_of,
)
from tests.helpers import create_account
from tests.webhooks.support import FakeDns
from wacrm.models import Role
from wacrm.models.webhooks import WebhookDelivery, WebhookEndpoint

PAGE = "/settings/webhooks"
URL = "https://example.com/hooks/wacrm"
_SECRET = re.compile(r'id="webhook-secret"[^>]*\svalue="(whsec_[^"]+)"')


@pytest.fixture
def app(app):
    app.state.webhook_resolver = FakeDns()  # example.com is public; nothing else resolves
    return app


def _csrf(person) -> str:
    return str(person.csrf["X-CSRF-Token"])


async def _count(db, model) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def _endpoint(db) -> WebhookEndpoint:
    await db.rollback()
    statement = select(WebhookEndpoint).execution_options(populate_existing=True)
    return (await db.execute(statement)).scalar_one()


async def _create(client, person, **fields):
    body = {"csrf_token": _csrf(person), "url": URL, "events": ["message.received"], **fields}
    return await post_form(client, PAGE, body)


async def test_create_shows_the_secret_once_then_the_roster_never_again(client, db):
    person = await log_in_as(client, db, Role.ADMIN)
    created = await _create(
        client, person, events=["message.received", "contact.created"], description="CRM sync"
    )
    assert created.status_code == 201, created.text
    secret = _SECRET.search(created.text).group(1)  # type: ignore[union-attr]
    assert "it will not be shown again" in text_of(created.text)
    assert f'data-replace-url="{PAGE}"' in created.text
    assert_no_inline_code(created.text)

    endpoint = await _endpoint(db)
    assert (endpoint.url, endpoint.events) == (URL, ["message.received", "contact.created"])
    assert endpoint.description == "CRM sync" and endpoint.is_active
    endpoint_id = endpoint.id
    assert secret not in await dump_database(db)  # stored encrypted

    roster = await client.get(PAGE)
    assert secret not in roster.text and "whsec_" not in roster.text
    assert URL in roster.text and "contact.created" in roster.text
    detail = await client.get(f"{PAGE}/{endpoint_id}")
    assert secret not in detail.text and "Active" in text_of(detail.text)


PUBLIC_ONLY = "An https:// address on the public internet"
PRIVATE_ALLOWED = "Loopback and private addresses are allowed on this server"


async def test_the_url_hint_says_what_this_server_accepts(client, db, app, settings):
    person = await log_in_as(client, db, Role.OWNER)
    public_only = text_of((await client.get(PAGE)).text)
    assert PUBLIC_ONLY in public_only and PRIVATE_ALLOWED not in public_only

    async with client_of_app_with(settings, webhooks_allow_private_targets=True) as http:
        person = await log_in_as(http, db, Role.OWNER)
        page = await http.get(PAGE)
        loopback = "http://127.0.0.1:9000/hooks/wacrm"
        created = await post_form(
            http,
            PAGE,
            {"csrf_token": _csrf(person), "url": loopback, "events": ["contact.created"]},
        )
    hint = text_of(page.text)
    assert PRIVATE_ALLOWED in hint and "http://127.0.0.1:9000/hooks/wacrm" in hint
    assert PUBLIC_ONLY not in hint
    assert_no_inline_code(page.text)
    assert created.status_code == 201, "what the hint promises, the server accepts"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://example.com/h"}, "URL:"),
        ({"url": "https://user:pw@example.com/h"}, "URL:"),
        ({"url": "https://127.0.0.1:8443\\@example.com/h"}, "URL:"),
        ({"url": "https://unknown.invalid/h"}, "URL:"),
        ({"url": ""}, "URL:"),
        ({"events": []}, "Events:"),
        ({"events": ["message.received", "webhook.test"]}, "Events: unknown event 'webhook.test'"),
        ({"events": ["nope"]}, "Events: unknown event 'nope'"),
        ({"description": "x" * 501}, "Description:"),
        ({"description": "bell\x07"}, "Description: must not contain control characters"),
    ],
)
async def test_bad_webhooks_are_a_400_on_the_form_and_store_nothing(client, db, fields, message):
    person = await log_in_as(client, db, Role.OWNER)
    response = await _create(client, person, **fields)
    assert response.status_code == 400, response.text
    assert message in text_of(response.text)
    assert "whsec_" not in response.text
    assert await _count(db, WebhookEndpoint) == 0


async def test_test_disable_enable_redeliver_rotate_and_delete(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    first_secret = _SECRET.search((await _create(client, person)).text).group(1)  # type: ignore[union-attr]
    endpoint = await _endpoint(db)
    here = f"{PAGE}/{endpoint.id}"
    csrf = {"csrf_token": _csrf(person)}

    tested = await post_form(client, f"{here}/test", csrf)
    assert (tested.status_code, tested.headers["location"]) == (303, here)
    page = await client.get(here)
    assert "A webhook.test event is on its way" in text_of(page.text)
    [delivery] = re.findall(r'id="delivery-([0-9a-f-]{36})"', page.text)
    assert "webhook.test" in text_of(page.text) and "Pending" in text_of(page.text)
    fragment = await client.get(f"{here}/deliveries")
    assert f'id="delivery-{delivery}"' in fragment.text and "<html" not in fragment.text

    again = await post_form(client, f"{here}/deliveries/{delivery}/redeliver", csrf)
    assert again.status_code == 303
    assert await _count(db, WebhookDelivery) == 2

    assert (await post_form(client, f"{here}/disable", csrf)).status_code == 303
    assert not (await _endpoint(db)).is_active
    refused = await post_form(client, f"{here}/test", csrf)
    assert refused.status_code == 303
    assert "disabled: enable it to send a test" in text_of((await client.get(here)).text)
    refused = await post_form(client, f"{here}/deliveries/{delivery}/redeliver", csrf)
    assert "disabled: enable it to redeliver" in text_of((await client.get(here)).text)
    assert await _count(db, WebhookDelivery) == 2
    assert (await post_form(client, f"{here}/enable", csrf)).status_code == 303
    assert (await _endpoint(db)).is_active

    confirm = await client.get(f"{here}/rotate")
    assert "Rotate the signing secret?" in text_of(confirm.text)
    rotated = await post_form(client, f"{here}/rotate", csrf)
    assert rotated.status_code == 200
    second_secret = _SECRET.search(rotated.text).group(1)  # type: ignore[union-attr]
    assert second_secret != first_secret
    assert f'data-replace-url="{here}"' in rotated.text
    assert second_secret not in (await client.get(here)).text

    confirm = await client.get(f"{here}/delete")
    assert "Delete this webhook?" in text_of(confirm.text)
    assert await _count(db, WebhookEndpoint) == 1  # asking deletes nothing
    deleted = await post_form(client, f"{here}/delete", csrf)
    assert (deleted.status_code, deleted.headers["location"]) == (303, PAGE)
    assert await _count(db, WebhookEndpoint) == 0
    assert await _count(db, WebhookDelivery) == 0
    assert (await client.get(here)).status_code == 404


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
async def test_agents_and_viewers_get_403_for_every_page_and_post(client, db, app, role):
    account = await create_account(db)
    async with another_client(app) as owner_client:
        owner = await log_in_as(owner_client, db, Role.OWNER, account)
        await _create(owner_client, owner)
    endpoint = await _endpoint(db)
    person = await log_in_as(client, db, role, account)
    assert "/settings/webhooks" not in (await client.get("/inbox")).text  # not in the nav
    here = f"{PAGE}/{endpoint.id}"
    for url in (PAGE, here, f"{here}/deliveries", f"{here}/rotate", f"{here}/delete"):
        response = await client.get(url)
        assert response.status_code == 403, url
        assert "Only an owner or admin can do this." in text_of(response.text)
    for url in (PAGE, f"{here}/test", f"{here}/disable", f"{here}/rotate", f"{here}/delete"):
        fields = {"csrf_token": _csrf(person), "url": URL, "events": "contact.created"}
        assert (await post_form(client, url, fields)).status_code == 403, url
    after = await _endpoint(db)
    assert (after.id, after.is_active, after.secret_encrypted) == (
        endpoint.id,
        True,
        endpoint.secret_encrypted,
    )
    assert await _count(db, WebhookDelivery) == 0


async def test_csrf_and_another_accounts_webhook_change_nothing(client, db, app):
    other = await create_account(db, "Other Co")
    async with another_client(app) as owner_client:
        owner = await log_in_as(owner_client, db, Role.OWNER, other)
        await _create(owner_client, owner)
        theirs = await _endpoint(db)
        await post_form(owner_client, f"{PAGE}/{theirs.id}/test", {"csrf_token": _csrf(owner)})
    [their_delivery] = (await db.execute(select(WebhookDelivery.id))).scalars()
    person = await log_in_as(client, db, Role.OWNER)
    assert str(theirs.id) not in (await client.get(PAGE)).text

    for token in (None, "", "wrong"):
        fields = {"url": URL, "events": "contact.created"}
        fields |= {} if token is None else {"csrf_token": token}
        response = await post_form(client, PAGE, fields)
        assert response.status_code == 403
        assert "did not come from this dashboard" in text_of(response.text)

    there = f"{PAGE}/{theirs.id}"
    for url in (there, f"{there}/deliveries", f"{there}/rotate", f"{there}/delete", f"{PAGE}/x"):
        response = await client.get(url)
        assert response.status_code == 404, url
        assert "Page not found" in text_of(response.text)
    csrf = {"csrf_token": _csrf(person)}
    for action in ("test", "disable", "enable", "rotate", "delete"):
        response = await post_form(client, f"{there}/{action}", csrf)
        assert response.status_code == 404, action
    redeliver = await post_form(client, f"{there}/deliveries/{their_delivery}/redeliver", csrf)
    assert redeliver.status_code == 404
    after = await _endpoint(db)
    assert (after.id, after.is_active, after.secret_encrypted) == (
        theirs.id,
        True,
        theirs.secret_encrypted,
    )
    assert await _count(db, WebhookDelivery) == 1
