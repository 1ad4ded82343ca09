"""SPEC §3.8 through the session JSON API: rolling a key (with or without a grace period)
and the audit log of key events, walked with its cursor.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

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
from tests.helpers import create_key
from wacrm.kit.clock import utcnow
from wacrm.models import AuditEvent, Role


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def roll(client, person, key_id, body=None):
    return await client.post(f"{KEYS_URL}/{key_id}/roll", json=body, headers=person.csrf)


# ---------------------------------------------------------------- rolling


async def test_a_roll_without_grace_replaces_the_key_at_once(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(
        client, owner, name="zapier", scopes=["contacts:read", "messages:send"]
    )
    assert (await client.get(ME_URL, headers=bearer(old["plaintext"]))).status_code == 200

    response = await client.post(f"{KEYS_URL}/{old['key']['id']}/roll", headers=owner.csrf)

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    data = response.json()["data"]
    new = data["plaintext"]
    assert new.startswith("wacrm_live_") and new != old["plaintext"]
    assert response.text.count(new) == 1
    assert old["plaintext"][11:] not in response.text
    assert HEX64.search(response.text) is None
    assert (data["key"]["name"], data["key"]["scopes"]) == ("zapier", old["key"]["scopes"])
    assert data["key"]["id"] != old["key"]["id"]
    assert data["previous"]["status"] == "revoked"
    assert data["previous"]["rolled_to_id"] == data["key"]["id"]
    assert data["previous"]["created_by"]["email"] == owner.email
    assert data["previous"]["revoked_by"]["email"] == owner.email

    assert (await client.get(ME_URL, headers=bearer(old["plaintext"]))).status_code == 401
    me = await client.get(ME_URL, headers=bearer(new))
    assert me.status_code == 200
    assert (me.json()["data"]["key"]["name"], me.json()["data"]["key"]["scopes"]) == (
        "zapier",
        old["key"]["scopes"],
    )
    roster = {k["id"]: k for k in (await client.get(KEYS_URL)).json()["data"]}
    assert roster[old["key"]["id"]]["status"] == "revoked"
    assert roster[data["key"]["id"]]["status"] == "active"


async def test_a_roll_with_grace_keeps_both_keys_until_the_grace_ends(client, db, monkeypatch):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner, scopes=["contacts:read"])
    before = utcnow()
    response = await roll(client, owner, old["key"]["id"], {"grace_period_hours": 2})
    after = utcnow()
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    ends = when(data["previous"]["expires_at"])
    assert before + timedelta(hours=2) <= ends <= after + timedelta(hours=2)
    assert (await key_row(db, old["key"]["id"])).expires_at == ends
    assert data["previous"]["status"] == "active"

    old_key, new_key = bearer(old["plaintext"]), bearer(data["plaintext"])
    assert (await client.get(ME_URL, headers=old_key)).status_code == 200
    assert (await client.get(ME_URL, headers=new_key)).status_code == 200

    later = ends + timedelta(seconds=1)
    monkeypatch.setattr(key_auth, "utcnow", lambda: later)
    assert (await client.get(ME_URL, headers=old_key)).status_code == 401
    assert (await client.get(ME_URL, headers=new_key)).status_code == 200


async def test_the_grace_never_extends_a_keys_life(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner)
    soon = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    await set_key(db, old["key"]["id"], expires_at=soon)
    response = await roll(client, owner, old["key"]["id"], {"grace_period_hours": 168})
    assert response.status_code == 201
    assert when(response.json()["data"]["previous"]["expires_at"]) == soon
    assert (await key_row(db, old["key"]["id"])).expires_at == soon


async def test_the_longest_grace_is_seven_days(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner)
    response = await roll(client, owner, old["key"]["id"], {"grace_period_hours": 168})
    assert response.status_code == 201
    ends = when(response.json()["data"]["previous"]["expires_at"])
    assert abs(ends - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)


async def test_a_rolled_key_that_expires_is_replaced_by_one_that_expires(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner, expires_in_days=30)
    response = await roll(client, owner, old["key"]["id"])
    assert response.status_code == 201
    expires = response.json()["data"]["key"]["expires_at"]
    assert expires is not None  # a roll must not turn a 30-day key into a forever key
    assert abs(when(expires) - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize("grace", [169, -1, "2", 1.5, True, None, 10**30, [2]])
async def test_a_bad_grace_is_400_and_changes_nothing(client, db, grace):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner)
    keys, events = await count_keys(db), await count_audit_events(db)
    response = await roll(client, owner, old["key"]["id"], {"grace_period_hours": grace})
    assert_error(response, 400, "bad_request")
    assert (await count_keys(db), await count_audit_events(db)) == (keys, events)
    row = await key_row(db, old["key"]["id"])
    assert (row.revoked_at, row.rolled_to_id, row.expires_at) == (None, None, None)
    assert (await client.get(ME_URL, headers=bearer(old["plaintext"]))).status_code == 200


async def test_a_malformed_roll_body_is_400(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner)
    headers = {**owner.csrf, "Content-Type": "application/json"}
    for body in (b"not json", b"[1]", b'"x"'):
        response = await client.post(
            f"{KEYS_URL}/{old['key']['id']}/roll", content=body, headers=headers
        )
        assert_error(response, 400, "bad_request")
    assert await count_keys(db) == 1


async def test_rolling_a_revoked_key_is_409(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner)
    assert (
        await client.delete(f"{KEYS_URL}/{old['key']['id']}", headers=owner.csrf)
    ).status_code == 200
    events = await count_audit_events(db)
    assert_error(await roll(client, owner, old["key"]["id"]), 409, "conflict")
    assert await count_keys(db) == 1
    assert await count_audit_events(db) == events


@pytest.mark.parametrize("grace", [0, 2])
async def test_rolling_twice_is_409(client, db, grace):
    owner = await log_in_as(client, db, Role.OWNER)
    old = await create_via_api(client, owner)
    first = await roll(client, owner, old["key"]["id"], {"grace_period_hours": grace})
    assert first.status_code == 201
    assert_error(
        await roll(client, owner, old["key"]["id"], {"grace_period_hours": grace}), 409, "conflict"
    )
    assert await count_keys(db) == 2
    new = first.json()["data"]["plaintext"]
    assert (await client.get(ME_URL, headers=bearer(new))).status_code == 200


async def test_rolling_another_accounts_key_is_404(client, db, app):
    owner = await log_in_as(client, db, Role.OWNER)
    async with another_client(app) as other_client:
        stranger = await log_in_as(other_client, db, Role.OWNER)
        foreign = await create_via_api(other_client, stranger)
    assert_error(await roll(client, owner, foreign["key"]["id"]), 404, "not_found")
    assert await count_keys(db) == 1
    assert (await client.get(ME_URL, headers=bearer(foreign["plaintext"]))).status_code == 200


# ---------------------------------------------------------------- the audit log


async def test_the_audit_log_records_who_did_what_when_and_from_where(client, db, app):
    owner = await log_in_as(client, db, Role.OWNER)
    start = utcnow()
    first = await create_via_api(client, owner, name="first")
    async with another_client(app) as admin_client:
        admin = await log_in_as(admin_client, db, Role.ADMIN, account=owner.account)
        second = await create_via_api(admin_client, admin, name="second")
        await client.delete(f"{KEYS_URL}/{first['key']['id']}", headers=owner.csrf)
        rolled = await roll(admin_client, admin, second["key"]["id"], {"grace_period_hours": 1})
    end = utcnow()

    response = await client.get(AUDIT_URL)
    assert response.status_code == 200
    events = response.json()["data"]
    assert response.json()["meta"]["next_cursor"] is None
    assert [(e["action"], e["actor"], e["target_id"]) for e in events] == [
        ("api_key.rolled", admin.email, second["key"]["id"]),
        ("api_key.revoked", owner.email, first["key"]["id"]),
        ("api_key.created", admin.email, second["key"]["id"]),
        ("api_key.created", owner.email, first["key"]["id"]),
    ]
    assert {e["client_ip"] for e in events} == {"127.0.0.1"}
    assert all(e["actor_user_id"] for e in events)
    times = [when(e["created_at"]) for e in events]
    assert times == sorted(times, reverse=True)
    assert all(start <= t <= end for t in times)
    assert events[0]["details"]["new_key_id"] == rolled.json()["data"]["key"]["id"]
    for secret in (first["plaintext"], second["plaintext"], rolled.json()["data"]["plaintext"]):
        assert secret[11:] not in response.text
    assert HEX64.search(response.text) is None


async def test_the_audit_log_is_the_accounts_own(client, db, app):
    await log_in_as(client, db, Role.OWNER)
    async with another_client(app) as other_client:
        stranger = await log_in_as(other_client, db, Role.OWNER)
        await create_via_api(other_client, stranger)
    assert (await client.get(AUDIT_URL)).json()["data"] == []


async def walk(client, limit: int) -> list[str]:
    seen, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(AUDIT_URL, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        seen += [e["id"] for e in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("same_time", [False, True], ids=["distinct-times", "all-tied"])
async def test_walking_the_audit_log_visits_every_event_once(client, db, same_time):
    owner = await log_in_as(client, db, Role.OWNER)
    for index in range(5):
        await create_key(db, owner.account.id, name=f"k{index}")
    await create_via_api(client, owner)
    if same_time:  # keyset pagination must break ties on id, not skip or repeat rows
        await db.execute(update(AuditEvent).values(created_at=utcnow()))
        await db.commit()
    everything = [e["id"] for e in (await client.get(AUDIT_URL)).json()["data"]]
    assert len(everything) == len(set(everything)) == 6
    assert await walk(client, 1) == everything
    assert await walk(client, 4) == everything


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%",
        "null",
        "",
        _b64(b"invalid"),
        _b64(b'["2020-01-01T00:00:00+00:00", "x"]' + b"0" * 16),
    ],
)
async def test_a_garbage_cursor_is_400(client, db, cursor):
    await log_in_as(client, db, Role.OWNER)
    assert_error(await client.get(AUDIT_URL, params={"cursor": cursor}), 400, "bad_request")


async def test_a_tampered_or_foreign_cursor_is_400(client, db, app):
    owner = await log_in_as(client, db, Role.OWNER)
    for index in range(3):
        await create_key(db, owner.account.id, name=f"k{index}")
    cursor = (await client.get(AUDIT_URL, params={"limit": 1})).json()["meta"]["next_cursor"]
    assert cursor
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert_error(await client.get(AUDIT_URL, params={"cursor": tampered}), 400, "bad_request")
    async with another_client(app) as other_client:
        stranger = await log_in_as(other_client, db, Role.OWNER)
        await create_key(db, stranger.account.id)
        response = await other_client.get(AUDIT_URL, params={"cursor": cursor})
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", ""])
async def test_a_bad_limit_is_400(client, db, limit):
    await log_in_as(client, db, Role.OWNER)
    assert_error(await client.get(AUDIT_URL, params={"limit": limit}), 400, "bad_request")
