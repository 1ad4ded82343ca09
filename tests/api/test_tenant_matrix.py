"""Tenant isolation, generated from the route table: account A's key never reaches B's rows.

Every /api/v1 route with ids in its path gets B's real ids from a key of A with every
scope → 404 (never 403, never B's data); A's lists and searches never show B's rows; B's
cursors are refused for A.
"""

from __future__ import annotations

import re

import pytest

from tests.api.support import B_PHONE, SECRET_TEXT, populated_account
from tests.api.test_scope_matrix import ROUTES
from tests.helpers import create_account, create_key
from wacrm.settings import Settings

BODIES = {
    ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": "stolen"},
    ("POST", "/api/v1/contacts/{contact_id}/tags"): {"add": ["stolen"]},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": "stolen"},
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private_targets": True})


WITH_IDS = [(m, p) for m, p, _ in ROUTES if "{" in p]


async def test_every_route_answers_404_for_another_accounts_ids(client, db, settings):
    foreign, _ = await populated_account(client, db, settings)
    account = await create_account(db, "Alpha")
    key = await create_key(db, account.id)
    assert WITH_IDS, "no routes with ids found"
    for method, path in WITH_IDS:
        url = re.sub(r"\{(\w+)\}", lambda m: foreign[m.group(1)], path)
        response = await client.request(
            method, url, headers=key.headers, json=BODIES.get((method, path), {})
        )
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "not_found"
        assert SECRET_TEXT not in response.text


async def test_lists_and_searches_never_show_another_account(client, db, settings):
    foreign, _ = await populated_account(client, db, settings)
    account = await create_account(db, "Alpha")
    key = await create_key(db, account.id)
    lists = [p for m, p, _ in ROUTES if m == "GET" and "{" not in p and p != "/api/v1/me"]
    assert len(lists) >= 5
    for path in lists:
        response = await client.get(path, headers=key.headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["data"] == [], (path, response.text)
        for value in foreign.values():
            assert value not in response.text
    found = await client.get(
        "/api/v1/contacts", params={"search": B_PHONE[-7:]}, headers=key.headers
    )
    assert found.json()["data"] == []


async def test_another_accounts_cursor_is_400(client, db, settings):
    _, b_key = await populated_account(client, db, settings)
    page = await client.get("/api/v1/contacts", params={"limit": 1}, headers=b_key.headers)
    cursor = page.json()["meta"]["next_cursor"]
    assert cursor
    account = await create_account(db, "Alpha")
    key = await create_key(db, account.id)
    response = await client.get(
        "/api/v1/contacts", params={"limit": 1, "cursor": cursor}, headers=key.headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
