"""SPEC §3.2 through the session JSON API: every bad name, scope and expiry is a 400 that
creates nothing (case 2); good ones are normalised and stored as documented.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from tests.api_keys import (
    KEYS_URL,
    ME_URL,
    assert_error,
    bearer,
    count_audit_events,
    count_keys,
    create_via_api,
    key_row,
    log_in_as,
)
from wacrm.kit.clock import utcnow
from wacrm.models import Role


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def post_raw(client, person, body: str):
    headers = {**person.csrf, "Content-Type": "application/json"}
    return await client.post(KEYS_URL, content=body.encode(), headers=headers)


# ---------------------------------------------------------------- creating: name


BAD_NAMES = {
    "empty": '""',
    "spaces": '"   "',
    "unicode-spaces": '"\\u00a0\\u3000"',
    "81-chars": json.dumps("x" * 81),
    "newline": '"a\\nb"',
    "tab": '"a\\tb"',
    "nul": '"a\\u0000b"',
    "del": '"a\\u007fb"',
    "escape": '"a\\u001bb"',
    "c1-control": '"a\\u0085b"',
    "lone-surrogate": '"\\ud800"',
    "lone-low-surrogate": '"a\\udc00"',
    "only-invisible": '"\\u200b\\u200d\\ufeff"',
    "bidi-override": '"prod \\u202ekey"',
    "bidi-isolate": '"a\\u2066b\\u2069"',
    "number": "5",
    "null": "null",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
async def test_bad_names_are_400_and_create_nothing(client, db, name):
    owner = await log_in_as(client, db, Role.OWNER)
    response = await post_raw(client, owner, f'{{"name": {name}, "scopes": []}}')
    assert_error(response, 400, "bad_request")
    assert await count_keys(db) == 0
    assert await count_audit_events(db) == 0


async def test_a_missing_name_is_400(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    assert_error(await post_raw(client, owner, '{"scopes": []}'), 400, "bad_request")
    assert_error(await post_raw(client, owner, "not json"), 400, "bad_request")
    assert_error(await post_raw(client, owner, '["name"]'), 400, "bad_request")
    assert await count_keys(db) == 0


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("x" * 80, "x" * 80, id="80-chars"),
        pytest.param("\U0001f600" * 80, "\U0001f600" * 80, id="80-emoji"),
        pytest.param("  n8n prod  ", "n8n prod", id="trimmed"),
        pytest.param("  " + "y" * 80 + "\u00a0", "y" * 80, id="80-after-trim"),
        pytest.param("Cl\u00e9 \u2013 \u65e5\u672c", "Cl\u00e9 \u2013 \u65e5\u672c", id="unicode"),
        pytest.param(
            "team \U0001f469\u200d\U0001f4bb", "team \U0001f469\u200d\U0001f4bb", id="zwj-emoji"
        ),
    ],
)
async def test_good_names_are_trimmed_and_kept(client, db, sent, stored):
    owner = await log_in_as(client, db, Role.OWNER)
    created = await create_via_api(client, owner, name=sent)
    assert created["key"]["name"] == stored
    assert (await key_row(db, created["key"]["id"])).name == stored


# ---------------------------------------------------------------- creating: scopes


@pytest.mark.parametrize(
    "scope",
    ["contacts:delete", "contacts:*", "*", "CONTACTS:READ", " contacts:read", "contacts", ""],
)
async def test_an_unknown_scope_is_400_naming_it(client, db, scope):
    owner = await log_in_as(client, db, Role.OWNER)
    response = await client.post(
        KEYS_URL, json={"name": "k", "scopes": ["contacts:read", scope]}, headers=owner.csrf
    )
    assert_error(response, 400, "bad_request")
    assert repr(scope) in response.json()["error"]["message"]
    assert await count_keys(db) == 0


@pytest.mark.parametrize("scopes", ['"contacts:read"', "[1]", "null", '{"a": 1}'])
async def test_scopes_of_the_wrong_type_are_400(client, db, scopes):
    owner = await log_in_as(client, db, Role.OWNER)
    assert_error(
        await post_raw(client, owner, f'{{"name": "k", "scopes": {scopes}}}'), 400, "bad_request"
    )
    assert await count_keys(db) == 0


async def test_duplicate_scopes_collapse_and_empty_is_allowed(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    sent = ["contacts:read", "messages:send", "contacts:read", "messages:send"]
    created = await create_via_api(client, owner, scopes=sent)
    assert sorted(created["key"]["scopes"]) == ["contacts:read", "messages:send"]
    assert sorted((await key_row(db, created["key"]["id"])).scopes) == sorted(set(sent))

    empty = await create_via_api(client, owner, scopes=[])
    assert empty["key"]["scopes"] == []
    assert (await key_row(db, empty["key"]["id"])).scopes == []


# ---------------------------------------------------------------- creating: expiry (case 2)


async def test_expires_at_with_an_offset_is_stored_in_utc(client, db, settings):
    owner = await log_in_as(client, db, Role.OWNER)
    instant = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    local = instant.astimezone(datetime.strptime("+0530", "%z").tzinfo).isoformat()
    assert local.endswith("+05:30")
    created = await create_via_api(client, owner, expires_at=local)

    assert when(created["key"]["expires_at"]) == instant
    assert when(created["key"]["expires_at"]).utcoffset() == timedelta(0)
    row = await key_row(db, created["key"]["id"])
    assert row.expires_at == instant
    if settings.is_sqlite:  # the stored spelling is UTC wall time, not 05:30 ahead of it
        raw = await db.scalar(text("SELECT expires_at FROM api_keys"))
        assert str(raw).startswith(instant.replace(tzinfo=None).isoformat(sep=" "))
    zulu = await create_via_api(
        client, owner, expires_at=instant.isoformat().replace("+00:00", "Z")
    )
    assert when(zulu["key"]["expires_at"]) == instant


def _future(days: float) -> datetime:
    return utcnow() + timedelta(days=days)


BAD_EXPIRES_AT = {
    "no-offset": lambda: _future(10).replace(tzinfo=None).isoformat(),
    "date-only": lambda: _future(10).date().isoformat(),
    "yesterday": lambda: _future(-1).isoformat(),
    "one-second-ago": lambda: (utcnow() - timedelta(seconds=1)).isoformat(),
    "366-days": lambda: _future(366).isoformat(),
    "365-days-and-an-hour": lambda: (_future(365) + timedelta(hours=1)).isoformat(),
    "year-9999-west": lambda: "9999-12-31T23:59:59-14:00",
    "year-1-east": lambda: "0001-01-01T00:00:00+14:00",
    "garbage": lambda: "next tuesday",
    "empty": lambda: "",
    "impossible-date": lambda: "2030-02-30T00:00:00Z",
    "number": lambda: 1_900_000_000,
}


@pytest.mark.parametrize("value", BAD_EXPIRES_AT.values(), ids=BAD_EXPIRES_AT.keys())
async def test_bad_expires_at_is_400_and_creates_nothing(client, db, value):
    owner = await log_in_as(client, db, Role.OWNER)
    response = await client.post(
        KEYS_URL, json={"name": "k", "expires_at": value()}, headers=owner.csrf
    )
    assert_error(response, 400, "bad_request")
    assert await count_keys(db) == 0
    assert await count_audit_events(db) == 0


@pytest.mark.parametrize("days", [0, -1, 366, "abc", 1.5, True, "30", 10**30, [30]])
async def test_bad_expires_in_days_is_400_and_creates_nothing(client, db, days):
    owner = await log_in_as(client, db, Role.OWNER)
    response = await client.post(
        KEYS_URL, json={"name": "k", "expires_in_days": days}, headers=owner.csrf
    )
    assert_error(response, 400, "bad_request")
    assert await count_keys(db) == 0


@pytest.mark.parametrize("days", [1, 365])
async def test_expires_in_days_within_range(client, db, days):
    owner = await log_in_as(client, db, Role.OWNER)
    before = utcnow()
    created = await create_via_api(client, owner, expires_in_days=days)
    expires = when(created["key"]["expires_at"])
    assert before + timedelta(days=days) <= expires <= utcnow() + timedelta(days=days)
    assert created["key"]["status"] == "active"


async def test_expiry_just_under_365_days_and_never(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    edge = (_future(365) - timedelta(minutes=1)).isoformat()
    assert when((await create_via_api(client, owner, expires_at=edge))["key"]["expires_at"])
    never = await create_via_api(client, owner, expires_at=None, expires_in_days=None)
    assert never["key"]["expires_at"] is None


async def test_both_expiry_fields_together_is_400(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    body = {"name": "k", "expires_in_days": 30, "expires_at": _future(30).isoformat()}
    assert_error(await client.post(KEYS_URL, json=body, headers=owner.csrf), 400, "bad_request")
    assert await count_keys(db) == 0


async def test_the_create_response_carries_the_plaintext_once(client, db):
    owner = await log_in_as(client, db, Role.OWNER)
    response = await client.post(
        KEYS_URL, json={"name": "k", "scopes": ["contacts:read"]}, headers=owner.csrf
    )
    assert response.status_code == 201
    plaintext = response.json()["data"]["plaintext"]
    assert response.text.count(plaintext) == 1
    assert response.json()["data"]["key"]["created_by"]["email"] == owner.email
    assert (await client.get(ME_URL, headers=bearer(plaintext))).status_code == 200
