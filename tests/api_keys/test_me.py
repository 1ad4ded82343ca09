"""SPEC §5 ``GET /api/v1/me``: the account and key making the request, in an exact shape."""

from __future__ import annotations

from datetime import datetime

from tests.api_keys import HEX64, ME_URL, bearer, create_via_api, key_row, log_in_as
from tests.helpers import create_account, create_key
from wacrm.api_keys.scopes import Scope
from wacrm.models import Role


async def test_me_has_exactly_the_documented_shape(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(
        client, owner, name="n8n prod", scopes=["messages:send", "contacts:read"]
    )
    response = await client.get(ME_URL, headers=bearer(created["plaintext"]))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"data"}
    assert set(body["data"]) == {"account", "key"}
    assert body["data"]["account"] == {"id": str(owner.account.id), "name": "Acme"}
    assert body["data"]["key"] == {
        "id": created["key"]["id"],
        "name": "n8n prod",
        "prefix": created["plaintext"][:19],
        "scopes": ["messages:send", "contacts:read"],
        "expires_at": None,
    }


async def test_me_never_echoes_the_secret_or_its_hash(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    response = await client.get(ME_URL, headers=key.headers)
    assert response.status_code == 200
    assert key.plaintext[11:] not in response.text
    assert (await key_row(db, key.id)).key_hash not in response.text
    assert HEX64.search(response.text) is None


async def test_me_shows_the_expiry_and_a_key_without_scopes(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=[], expires_in_days=30)
    response = await client.get(ME_URL, headers=key.headers)
    assert response.status_code == 200
    data = response.json()["data"]["key"]
    assert data["scopes"] == []
    stored = (await key_row(db, key.id)).expires_at
    assert datetime.fromisoformat(data["expires_at"]) == stored


async def test_me_lists_scopes_once_in_the_canonical_order(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=["webhooks:manage", "messages:send"] * 2)
    response = await client.get(ME_URL, headers=key.headers)
    assert response.json()["data"]["key"]["scopes"] == ["messages:send", "webhooks:manage"]
    every = await create_key(db, account.id, scopes=list(Scope))
    response = await client.get(ME_URL, headers=every.headers)
    assert response.json()["data"]["key"]["scopes"] == [s.value for s in Scope]


async def test_me_answers_for_the_keys_own_account(client, db):
    first, second = await create_account(db, "First"), await create_account(db, "Second")
    first_key, second_key = await create_key(db, first.id), await create_key(db, second.id)
    one = (await client.get(ME_URL, headers=first_key.headers)).json()["data"]
    two = (await client.get(ME_URL, headers=second_key.headers)).json()["data"]
    assert (one["account"]["name"], one["key"]["id"]) == ("First", str(first_key.id))
    assert (two["account"]["name"], two["key"]["id"]) == ("Second", str(second_key.id))


async def test_me_carries_rate_limit_headers(client, db):
    key = await create_key(db, (await create_account(db)).id)
    response = await client.get(ME_URL, headers=key.headers)
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert response.headers[header].isdigit()


async def test_me_is_read_only(client, db):
    key = await create_key(db, (await create_account(db)).id)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, ME_URL, headers=key.headers)
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
