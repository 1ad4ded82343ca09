"""GET /contacts: search, tag filter, keyset pagination (case 16) and tenant isolation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from tests.contacts import CONTACTS, error_of, insert_contact, new_contact, tenant, walk

TIE = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _search(client, who, **params) -> list[str]:
    response = await client.get(CONTACTS, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return sorted(contact["phone"] for contact in response.json()["data"])


@pytest.fixture
async def acme(client, db):
    who = await tenant(db)  # every scope
    people = [
        ("+14155550123", "Ava Thompson", "ava@example.com", ["VIP", "Café"]),
        ("+14155550177", "Ben 100% Real", "ben_t@shop.example", ["cafe"]),
        ("+442079460958", "Chloé Martin", "chloe@example.co.uk", []),
        ("+390612345678", "benXt", "bent@example.com", ["Wholesale"]),
    ]
    for phone, name, email, tags in people:
        await new_contact(client, who, phone=phone, name=name, email=email, tags=tags)
    return who


async def test_without_filters_every_contact_is_listed_newest_first(client, acme):
    response = await client.get(CONTACTS, headers=acme.headers)
    body = response.json()
    assert body["meta"] == {"next_cursor": None}
    assert [c["phone"] for c in body["data"]] == [
        "+390612345678",
        "+442079460958",
        "+14155550177",
        "+14155550123",
    ]
    assert body["data"][3]["tags"] == ["Café", "VIP"]


async def test_search_matches_name_and_email_case_insensitively(client, acme):
    assert await _search(client, acme, search="THOMPSON") == ["+14155550123"]
    assert await _search(client, acme, search="ava@EXAMPLE") == ["+14155550123"]
    assert await _search(client, acme, search="example.co.uk") == ["+442079460958"]
    assert await _search(client, acme, search="  ben ") == ["+14155550177", "+390612345678"]
    assert await _search(client, acme, search="nobody") == []
    assert len(await _search(client, acme, search="")) == 4  # empty = no filter


async def test_search_wildcards_are_literal(client, acme):
    assert await _search(client, acme, search="100%") == ["+14155550177"]
    assert await _search(client, acme, search="%") == ["+14155550177"]
    assert await _search(client, acme, search="ben_") == ["+14155550177"]  # not "benX"
    assert await _search(client, acme, search="_") == ["+14155550177"]
    assert await _search(client, acme, search="\\") == []


async def test_search_matches_phone_digits_however_typed(client, acme):
    assert await _search(client, acme, search="5550123") == ["+14155550123"]
    assert await _search(client, acme, search="+1 415 555") == ["+14155550123", "+14155550177"]
    assert await _search(client, acme, search="(415) 555-0177") == ["+14155550177"]
    assert await _search(client, acme, search="+14155550123") == ["+14155550123"]
    assert await _search(client, acme, search="+44 (0)20 7946 0958") == ["+442079460958"]
    assert await _search(client, acme, search="9999") == []


async def test_search_matches_the_whatsapp_profile_name(client, db, acme):
    await insert_contact(
        db, acme.account_id, "+14155550188", datetime.now(UTC), profile_name="Dora WA"
    )
    assert await _search(client, acme, search="dora") == ["+14155550188"]


async def test_the_tag_filter_folds_case_and_accents(client, acme):
    assert await _search(client, acme, tag="CAFÉ") == ["+14155550123", "+14155550177"]
    assert await _search(client, acme, tag=" vip ") == ["+14155550123"]
    assert await _search(client, acme, tag="nope") == []
    assert await _search(client, acme, tag="cafe", search="ben") == ["+14155550177"]


@pytest.mark.parametrize(
    "params",
    [
        {"search": "a\x00b"},
        {"search": "x" * 201},
        {"tag": ""},
        {"tag": "x" * 65},
        {"tag": "a\tb"},
        {"limit": "ten"},
    ],
)
async def test_bad_filters_are_400(client, acme, params):
    error_of(await client.get(CONTACTS, params=params, headers=acme.headers), 400)


async def test_case_16_ties_are_each_listed_once_even_with_an_insert_mid_walk(client, db):
    acme = await tenant(db, "contacts:read")
    tied = [
        (await insert_contact(db, acme.account_id, f"+1415555010{n}", TIE)).id for n in range(5)
    ]
    response = await client.get(CONTACTS, params={"limit": 2}, headers=acme.headers)
    seen = [c["id"] for c in response.json()["data"]]
    cursor = response.json()["meta"]["next_cursor"]
    newcomer = await insert_contact(db, acme.account_id, "+14155550199", datetime.now(UTC))
    while cursor:
        params = {"limit": 2, "cursor": cursor}
        body = (await client.get(CONTACTS, params=params, headers=acme.headers)).json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["meta"]["next_cursor"]
    assert sorted(seen) == sorted(str(i) for i in tied)
    assert str(newcomer.id) not in seen


async def test_a_walk_returns_every_contact_once_with_older_ones_last(client, db):
    acme = await tenant(db, "contacts:read")
    for n in range(7):
        await insert_contact(db, acme.account_id, f"+1415555020{n}", TIE - timedelta(seconds=n))
    items = await walk(client, CONTACTS, acme, limit=3)
    assert [c["phone"] for c in items] == [f"+1415555020{n}" for n in range(7)]


async def _cursor(client, who, **params) -> str:
    response = await client.get(CONTACTS, params={"limit": 1, **params}, headers=who.headers)
    cursor: str = response.json()["meta"]["next_cursor"]
    assert cursor
    return cursor


@pytest.mark.parametrize(
    "cursor",
    ["null", "%%%", base64.urlsafe_b64encode(b"invalid").decode(), "", "a" * 1025, "é"],
)
async def test_case_16_malformed_cursors_are_400(client, acme, cursor):
    response = await client.get(CONTACTS, params={"cursor": cursor}, headers=acme.headers)
    error_of(response, 400)


async def test_case_16_a_cursor_only_works_where_it_was_made(client, db, acme):
    cursor = await _cursor(client, acme, search="ben")
    other = await tenant(db, "contacts:read", "contacts:write", name="Other shop")
    await new_contact(client, other, phone="+14155550123", name="Ben")
    for who, params, url in [
        (other, {"search": "ben"}, CONTACTS),  # another account
        (acme, {"search": "ava"}, CONTACTS),  # other filters
        (acme, {}, CONTACTS),
        (acme, {"search": "ben", "tag": "vip"}, CONTACTS),
        (acme, {}, "/api/v1/tags"),  # another endpoint
        (acme, {}, "/api/v1/conversations"),
    ]:
        response = await client.get(url, params={**params, "cursor": cursor}, headers=who.headers)
        error = error_of(response, 400)
        assert "Ben" not in response.text and error["details"][0]["field"] == "cursor"
    response = await client.get(
        CONTACTS, params={"search": "ben", "cursor": cursor}, headers=acme.headers
    )
    assert response.status_code == 200


@pytest.mark.parametrize("limit", [0, -1, 101, 100000])
async def test_limits_outside_1_to_100_are_400(client, acme, limit):
    error = error_of(await client.get(CONTACTS, params={"limit": limit}, headers=acme.headers), 400)
    assert error["details"][0]["field"] == "limit"


async def test_limits_1_and_100_work(client, acme):
    for limit, count in ((1, 1), (100, 4)):
        response = await client.get(CONTACTS, params={"limit": limit}, headers=acme.headers)
        assert len(response.json()["data"]) == count


async def test_another_account_never_shows_in_lists_or_searches(client, db, acme):
    other = await tenant(db, "contacts:read", "contacts:write", name="Other shop")
    theirs = await new_contact(
        client,
        other,
        phone="+14155550155",
        name="Ava Other",
        email="ava@other.example",
        tags=["VIP"],
    )
    for params in ({}, {"search": "ava"}, {"search": "5550155"}, {"tag": "vip"}, {"limit": 100}):
        response = await client.get(CONTACTS, params=params, headers=acme.headers)
        assert theirs["id"] not in response.text
        assert "+14155550155" not in response.text
    mine = await client.get(CONTACTS, headers=other.headers)
    assert [c["id"] for c in mine.json()["data"]] == [theirs["id"]]


async def test_listing_needs_contacts_read(client, db):
    writer = await tenant(db, "contacts:write", "conversations:read")
    error = error_of(await client.get(CONTACTS, headers=writer.headers), 403, "forbidden")
    assert "contacts:read" in error["message"]
