"""``/api/v1/webhooks``: registration rules, the secret shown once, changes, health reset."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from tests.helpers import create_account, create_key
from tests.webhooks.support import PUBLIC_IP, create_webhook, public_only
from wacrm.api_keys.scopes import Scope
from wacrm.kit.crypto import decrypt
from wacrm.models import IdempotencyRecord
from wacrm.models.webhooks import WebhookEndpoint

CASE_15_REFUSED = [
    "https://127.0.0.1:8443\\@example.com/h",
    "https://user:pw@example.com/h",
    " https://127.0.0.1/h",
    "https://example.com\t/h",
    "http://example.com/h",
    "ftp://example.com/h",
]


async def _key(db, scopes=(Scope.WEBHOOKS_MANAGE,)):
    account = await create_account(db)
    return account, await create_key(db, account.id, scopes=scopes)


async def _stored(db) -> list[WebhookEndpoint]:
    return list((await db.execute(select(WebhookEndpoint))).scalars())


async def test_create_shows_the_secret_once_and_stores_it_encrypted(client, db, app):
    _, key = await _key(db)
    response = await client.post(
        "/api/v1/webhooks",
        headers=key.headers,
        json={
            "url": "HTTPS://Example.com/h",
            "events": ["message.received", "contact.created", "contact.created"],
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"  # a secret: no cache keeps it
    data = response.json()["data"]
    secret, webhook = data["secret"], data["webhook"]
    assert secret.startswith("whsec_") and len(secret) == 38
    assert webhook["url"] == "https://example.com/h"  # case 15: canonical form stored
    assert webhook["events"] == ["message.received", "contact.created"]
    assert webhook["status"] == "active" and "secret" not in webhook

    [row] = await _stored(db)
    assert secret not in row.secret_encrypted
    assert decrypt(app.state.settings.secret_key, row.secret_encrypted) == secret
    for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{webhook['id']}"):
        shown = await client.get(path, headers=key.headers)
        assert shown.status_code == 200 and secret not in shown.text


@pytest.mark.parametrize("url", CASE_15_REFUSED)
async def test_case_15_parser_differentials_are_refused(client, db, app, url):
    public_only(app)
    _, key = await _key(db)
    response = await client.post(
        "/api/v1/webhooks", headers=key.headers, json={"url": url, "events": ["contact.created"]}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == "url"
    assert await _stored(db) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://0x7f.1/h",
        "https://[::ffff:169.254.169.254]/h",
        "https://localhost/h",
        "https://mixed.example/h",  # resolves to a public and a private address
        "https://nowhere.example/h",  # does not resolve
        "https://" + "a" * 5000 + ".com/",
        "",
    ],
)
async def test_unsafe_or_broken_urls_are_400(client, db, app, dns, url):
    public_only(app)
    dns.names["mixed.example"] = [PUBLIC_IP, "10.1.2.3"]
    _, key = await _key(db)
    response = await client.post(
        "/api/v1/webhooks", headers=key.headers, json={"url": url, "events": ["contact.created"]}
    )
    assert response.status_code == 400, response.text
    assert await _stored(db) == []


@pytest.mark.parametrize("url", [b"https://example.com/\xff", b"https://example.com/\\ud800"])
async def test_non_utf8_urls_are_400(client, db, url):
    _, key = await _key(db)
    body = b'{"url": "' + url + b'", "events": ["contact.created"]}'
    response = await client.post(
        "/api/v1/webhooks",
        headers={**key.headers, "content-type": "application/json"},
        content=body,
    )
    assert response.status_code == 400, response.text
    assert await _stored(db) == []


@pytest.mark.parametrize(
    "events", [[], ["nope"], ["webhook.test"], ["contact.created", 5], "contact.created", None]
)
async def test_unknown_or_empty_events_are_400(client, db, events):
    _, key = await _key(db)
    response = await client.post(
        "/api/v1/webhooks",
        headers=key.headers,
        json={"url": "https://example.com/h", "events": events},
    )
    assert response.status_code == 400, response.text
    assert await _stored(db) == []


async def test_scope_and_tenancy(client, db):
    account, key = await _key(db)
    _, other_key = await _key(db)
    no_scope = await create_key(db, account.id, scopes=[Scope.CONTACTS_READ])
    webhook_id, _ = await create_webhook(client, key.headers, "https://example.com/h")

    forbidden = await client.get("/api/v1/webhooks", headers=no_scope.headers)
    assert forbidden.status_code == 403
    assert "webhooks:manage" in forbidden.json()["error"]["message"]
    for method, path in [
        ("GET", f"/api/v1/webhooks/{webhook_id}"),
        ("PATCH", f"/api/v1/webhooks/{webhook_id}"),
        ("DELETE", f"/api/v1/webhooks/{webhook_id}"),
        ("POST", f"/api/v1/webhooks/{webhook_id}/test"),
        ("POST", f"/api/v1/webhooks/{webhook_id}/rotate-secret"),
        ("GET", f"/api/v1/webhooks/{webhook_id}/deliveries"),
        ("POST", f"/api/v1/webhooks/{webhook_id}/deliveries/{uuid.uuid4()}/redeliver"),
    ]:
        response = await client.request(method, path, headers=other_key.headers, json={})
        assert response.status_code == 404, (method, path, response.text)
    listed = await client.get("/api/v1/webhooks", headers=other_key.headers)
    assert listed.json()["data"] == []


async def test_patch_changes_only_what_is_sent_and_reenabling_resets_health(client, db, app):
    public_only(app)
    _, key = await _key(db)
    webhook_id, _ = await create_webhook(client, key.headers, "https://example.com/h")
    path = f"/api/v1/webhooks/{webhook_id}"
    await db.execute(
        text(
            "UPDATE webhook_endpoints SET is_active = false, consecutive_failures = 20, "
            "disabled_reason = 'Disabled automatically' WHERE id IS NOT NULL"
        )
    )
    await db.commit()

    described = await client.patch(path, headers=key.headers, json={"description": "CRM sync"})
    assert described.json()["data"]["description"] == "CRM sync"
    assert described.json()["data"]["status"] == "disabled"
    assert described.json()["data"]["url"] == "https://example.com/h"

    enabled = (await client.patch(path, headers=key.headers, json={"is_active": True})).json()
    assert enabled["data"]["status"] == "active"
    assert enabled["data"]["consecutive_failures"] == 0
    assert enabled["data"]["disabled_reason"] is None and enabled["data"]["disabled_at"] is None

    for body in (
        {"url": None},
        {"events": []},
        {"is_active": None},
        {"secret": "x"},
        {"url": "http://example.com/h"},
        {"description": "a\x00b"},
    ):
        refused = await client.patch(path, headers=key.headers, json=body)
        assert refused.status_code == 400, (body, refused.text)
    assert (await client.get(path, headers=key.headers)).json()["data"] == enabled["data"]

    disabled = await client.patch(path, headers=key.headers, json={"is_active": False})
    assert disabled.json()["data"]["disabled_reason"] == "Disabled through the API."
    test = await client.post(f"{path}/test", headers=key.headers)
    assert test.status_code == 409


async def test_rotate_delete_and_idempotency_never_stores_a_secret(client, db, app):
    _, key = await _key(db)
    headers = {**key.headers, "Idempotency-Key": "create-1"}
    webhook_id, first = await create_webhook(client, headers, "https://example.com/h")
    replay = await client.post(
        "/api/v1/webhooks",
        headers=headers,
        json={"url": "https://example.com/h", "events": ["contact.created"]},
    )
    assert replay.headers.get("Idempotent-Replayed") == "true", replay.text
    assert replay.headers["cache-control"] == "no-store"
    assert replay.json()["data"]["webhook"]["id"] == webhook_id  # one endpoint, not two
    assert replay.json()["data"]["secret"] == first  # the creation's answer, replayed
    rotate_headers = {**key.headers, "Idempotency-Key": "rotate-1"}
    rotated = await client.post(
        f"/api/v1/webhooks/{webhook_id}/rotate-secret", headers=rotate_headers
    )
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    second = rotated.json()["data"]["secret"]
    assert second != first and second.startswith("whsec_")
    [row] = await _stored(db)
    await db.refresh(row)
    assert decrypt(app.state.settings.secret_key, row.secret_encrypted) == second
    stored = (await db.execute(select(IdempotencyRecord.response_body))).scalars().all()
    assert not any(first.encode() in body or second.encode() in body for body in stored if body)

    deleted = await client.delete(f"/api/v1/webhooks/{webhook_id}", headers=key.headers)
    assert deleted.status_code == 204
    again = await client.delete(f"/api/v1/webhooks/{webhook_id}", headers=key.headers)
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


async def test_list_paginates_each_webhook_once(client, db):
    _, key = await _key(db)
    made = {
        (await create_webhook(client, key.headers, "https://example.com/h"))[0] for _ in range(5)
    }
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/webhooks", headers=key.headers, params=params)).json()
        seen += [w["id"] for w in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    bad = await client.get("/api/v1/webhooks", headers=key.headers, params={"cursor": "%%%"})
    assert bad.status_code == 400
