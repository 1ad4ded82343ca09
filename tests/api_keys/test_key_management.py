"""SPEC §3.6-3.7 and §2 through the session JSON API: the roster never leaks a secret
(case 6), revocation is immediate and final (case 3), and only owners and admins manage keys.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

import wacrm.api_keys.auth as key_auth
from tests.api_keys import (
    AUDIT_URL,
    HEX64,
    KEYS_URL,
    ME_URL,
    another_client,
    assert_error,
    bearer,
    count_audit_events,
    count_keys,
    create_via_api,
    key_row,
    log_in_as,
    set_key,
)
from tests.helpers import create_account, create_key
from wacrm.app import create_app
from wacrm.kit.clock import utcnow
from wacrm.models import Role

# ---------------------------------------------------------------- the roster (case 6)

ROSTER_FIELDS = {
    "id", "name", "prefix", "scopes", "status", "created_at", "created_by", "expires_at",
    "last_used_at", "revoked_at", "revoked_by", "rolled_to_id",
}  # fmt: skip


async def test_the_roster_never_shows_a_secret_or_hash(client, db, app):
    owner = await log_in_as(client, db, Role.OWNER)
    active = await create_via_api(client, owner, name="active", scopes=["contacts:read"])
    revoked = await create_via_api(client, owner, name="revoked")
    expired = await create_via_api(client, owner, name="expired", expires_in_days=1)
    await client.get(ME_URL, headers=bearer(active["plaintext"]))
    await client.delete(f"{KEYS_URL}/{revoked['key']['id']}", headers=owner.csrf)
    await set_key(db, expired["key"]["id"], expires_at=utcnow() - timedelta(seconds=1))

    async with another_client(app) as viewer_client:
        await log_in_as(viewer_client, db, Role.VIEWER, account=owner.account)
        response = await viewer_client.get(KEYS_URL)
    assert response.status_code == 200
    for created in (active, revoked, expired):
        row = await key_row(db, created["key"]["id"])
        assert created["plaintext"][11:] not in response.text
        assert row.key_hash not in response.text
    assert HEX64.search(response.text) is None
    roster = {k["name"]: k for k in response.json()["data"]}
    assert all(set(k) == ROSTER_FIELDS for k in roster.values())
    assert {n: k["status"] for n, k in roster.items()} == {
        "active": "active",
        "revoked": "revoked",
        "expired": "expired",
    }
    assert roster["active"]["last_used_at"] is not None
    assert roster["active"]["created_by"]["email"] == owner.email
    assert roster["revoked"]["revoked_by"]["email"] == owner.email
    assert roster["revoked"]["revoked_at"] is not None


async def test_the_roster_is_the_accounts_own(client, db, app):
    mine = await log_in_as(client, db, Role.OWNER)
    async with another_client(app) as other_client:
        theirs = await log_in_as(other_client, db, Role.OWNER)
        await create_via_api(other_client, theirs, name="theirs")
    await create_via_api(client, mine, name="mine")
    assert [k["name"] for k in (await client.get(KEYS_URL)).json()["data"]] == ["mine"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "POST"])
async def test_no_route_returns_the_secret_again(client, db, method):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner)
    for path in (f"{KEYS_URL}/{created['key']['id']}", f"{KEYS_URL}/{created['key']['id']}/secret"):
        response = await client.request(method, path, headers=owner.csrf, json={})
        assert response.status_code in (404, 405), (method, path, response.text)
        assert "error" in response.json()
        assert created["plaintext"][11:] not in response.text


async def test_only_create_and_roll_return_a_plaintext(client):
    document = (await client.get("/openapi.json")).json()

    def mentions_plaintext(schema, seen=frozenset()):
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if ref and ref not in seen:
                target = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
                return mentions_plaintext(target, seen | {ref})
            return "plaintext" in schema.get("properties", {}) or any(
                mentions_plaintext(v, seen) for v in schema.values()
            )
        return isinstance(schema, list) and any(mentions_plaintext(v, seen) for v in schema)

    returning = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation.get("responses", {}).items()
        if status.startswith("2") and mentions_plaintext(response)
    }
    assert returning == {("POST", KEYS_URL), ("POST", KEYS_URL + "/{key_id}/roll")}


# ---------------------------------------------------------------- revoking (case 3)


@asynccontextmanager
async def serving(app):
    """Run the app's startup and shutdown as `wacrm serve` does (workers, listeners...)."""
    async with app.router.lifespan_context(app):
        yield


ENDINGS = {
    "revoke": ("DELETE", "", None),
    "roll": ("POST", "/roll", None),
    "roll-grace-over": ("POST", "/roll", {"grace_period_hours": 1}),
}


@pytest.mark.parametrize("ending", ENDINGS.keys())
async def test_a_key_ends_at_once_on_every_process(client, db, app, settings, monkeypatch, ending):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner)
    key = bearer(created["plaintext"])
    second_process = create_app(settings)  # same database, its own state and cache
    async with serving(app), serving(second_process), another_client(second_process) as elsewhere:
        for _ in range(3):  # warm whatever caches there are, on both processes
            assert (await client.get(ME_URL, headers=key)).status_code == 200
            assert (await elsewhere.get(ME_URL, headers=key)).status_code == 200

        method, suffix, body = ENDINGS[ending]
        url = f"{KEYS_URL}/{created['key']['id']}{suffix}"
        response = await client.request(method, url, json=body, headers=owner.csrf)
        assert response.status_code in (200, 201), response.text
        if ending == "roll-grace-over":
            assert (await elsewhere.get(ME_URL, headers=key)).status_code == 200
            ends = (await key_row(db, created["key"]["id"])).expires_at
            monkeypatch.setattr(key_auth, "utcnow", lambda: ends + timedelta(seconds=1))

        assert (await elsewhere.get(ME_URL, headers=key)).status_code == 401
        assert (await client.get(ME_URL, headers=key)).status_code == 401


async def test_revoking_twice_is_409_and_changes_nothing(client, db, app):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner)
    first = await client.delete(f"{KEYS_URL}/{created['key']['id']}", headers=owner.csrf)
    assert first.status_code == 200
    before = await key_row(db, created["key"]["id"])
    revoked_at, revoked_by = before.revoked_at, before.revoked_by_id
    events = await count_audit_events(db)

    async with another_client(app) as admin_client:
        admin = await log_in_as(admin_client, db, Role.ADMIN, account=owner.account)
        again = await admin_client.delete(f"{KEYS_URL}/{created['key']['id']}", headers=admin.csrf)
    assert_error(again, 409, "conflict")
    after = await key_row(db, created["key"]["id"])
    assert (after.revoked_at, after.revoked_by_id) == (revoked_at, revoked_by)
    assert await count_audit_events(db) == events


async def test_revoke_response_matches_the_roster(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner)
    revoked = await client.delete(f"{KEYS_URL}/{created['key']['id']}", headers=owner.csrf)
    listed = (await client.get(KEYS_URL)).json()["data"][0]
    assert revoked.json()["data"] == listed
    assert listed["created_by"]["email"] == owner.email


async def test_revoking_another_accounts_key_is_404_and_it_keeps_working(client, db, app):
    owner = await log_in_as(client, db, Role.OWNER)
    async with another_client(app) as other_client:
        stranger = await log_in_as(other_client, db, Role.OWNER)
        foreign = await create_via_api(other_client, stranger)
    events = await count_audit_events(db)
    response = await client.delete(f"{KEYS_URL}/{foreign['key']['id']}", headers=owner.csrf)
    assert_error(response, 404, "not_found")
    assert (await key_row(db, foreign["key"]["id"])).revoked_at is None
    assert (await client.get(ME_URL, headers=bearer(foreign["plaintext"]))).status_code == 200
    assert await count_audit_events(db) == events


@pytest.mark.parametrize(
    "key_id",
    [
        "not-a-uuid",
        "123",
        "%27%3B--",
        "3f2c9e1a-7b4d-4c8e-9a6f-0d1e2b3c4a5f",
        "0" * 33,
        "%E2%98%83",
    ],
)
async def test_odd_key_ids_are_400_or_404_in_the_envelope(client, db, key_id):
    owner = await log_in_as(client, db, Role.OWNER)
    for method, suffix in (("DELETE", ""), ("POST", "/roll")):
        response = await client.request(method, f"{KEYS_URL}/{key_id}{suffix}", headers=owner.csrf)
        assert response.status_code in (400, 404), response.text
        assert response.json()["error"]["code"] in ("bad_request", "not_found")


# ---------------------------------------------------------------- who may do what (SPEC §2, case 5)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
async def test_role_matrix(client, db, role):
    account = await create_account(db)
    target = await create_key(db, account.id, name="target")
    to_roll = await create_key(db, account.id, name="to-roll")
    person = await log_in_as(client, db, role, account=account)
    keys_before, events_before = await count_keys(db), await count_audit_events(db)

    listed = await client.get(KEYS_URL)
    created = await client.post(KEYS_URL, json={"name": "new"}, headers=person.csrf)
    revoked = await client.delete(f"{KEYS_URL}/{target.id}", headers=person.csrf)
    rolled = await client.post(f"{KEYS_URL}/{to_roll.id}/roll", headers=person.csrf)
    audit = await client.get(AUDIT_URL)

    assert listed.status_code == 200
    assert {k["name"] for k in listed.json()["data"]} == {"target", "to-roll"}
    if role in (Role.OWNER, Role.ADMIN):
        assert [r.status_code for r in (created, revoked, rolled, audit)] == [201, 200, 201, 200]
        assert await count_keys(db) == keys_before + 2
        actions = [e["action"] for e in audit.json()["data"]][:3]
        assert actions == ["api_key.rolled", "api_key.revoked", "api_key.created"]
        return
    for response in (created, revoked, rolled, audit):
        assert_error(response, 403, "forbidden")
    assert await count_keys(db) == keys_before
    assert await count_audit_events(db) == events_before
    for key in (target, to_roll):
        row = await key_row(db, key.id)
        assert (row.revoked_at, row.rolled_to_id, row.expires_at) == (None, None, None)
        assert (await client.get(ME_URL, headers=key.headers)).status_code == 200


WRITES = {
    "create": ("POST", "", {"name": "k"}),
    "revoke": ("DELETE", "/{id}", None),
    "roll": ("POST", "/{id}/roll", {"grace_period_hours": 1}),
}


@pytest.mark.parametrize("csrf", ["missing", "empty", "wrong", "other-session"])
@pytest.mark.parametrize("action", WRITES.keys())
async def test_writes_without_the_right_csrf_token_are_403(client, db, app, action, csrf):
    owner = await log_in_as(client, db, Role.OWNER)
    key = await create_key(db, owner.account.id)
    async with another_client(app) as elsewhere:  # the same person, a second session
        other = await log_in_as(elsewhere, db, Role.OWNER, account=owner.account)
    headers = {
        "missing": {},
        "empty": {"X-CSRF-Token": ""},
        "wrong": {"X-CSRF-Token": owner.csrf["X-CSRF-Token"][:-1] + "x"},
        "other-session": other.csrf,
    }[csrf]
    keys_before, events_before = await count_keys(db), await count_audit_events(db)
    method, suffix, body = WRITES[action]
    url = KEYS_URL + suffix.format(id=key.id)
    assert_error(await client.request(method, url, json=body, headers=headers), 403, "forbidden")
    assert await count_keys(db) == keys_before
    assert await count_audit_events(db) == events_before
    row = await key_row(db, key.id)
    assert (row.revoked_at, row.rolled_to_id, row.expires_at) == (None, None, None)


ENDPOINTS = {
    "list": ("GET", "", None),
    "audit": ("GET", "audit", None),
    **WRITES,
}


@pytest.mark.parametrize("credential", ["none", "forged-cookie", "api-key", "logged-out"])
@pytest.mark.parametrize("action", ENDPOINTS.keys())
async def test_the_session_api_needs_a_live_session(client, db, action, credential):
    owner = await log_in_as(client, db, Role.OWNER)
    key = await create_key(db, owner.account.id)
    headers = {**owner.csrf}
    if credential == "logged-out":
        assert (await client.post("/api/auth/logout", headers=owner.csrf)).status_code == 204
    else:
        client.cookies.clear()
    if credential == "forged-cookie":
        client.cookies.set("wacrm_session", "forged-session-token")
    if credential == "api-key":  # machine keys never stand in for a person
        headers.update(key.headers)
    keys_before = await count_keys(db)
    method, suffix, body = ENDPOINTS[action]
    url = AUDIT_URL if action == "audit" else KEYS_URL + suffix.format(id=key.id)
    assert_error(await client.request(method, url, json=body, headers=headers), 401, "unauthorized")
    assert await count_keys(db) == keys_before
    assert (await key_row(db, key.id)).revoked_at is None
