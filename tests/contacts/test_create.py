"""POST /contacts: find-or-create by normalised number (cases 11, 12), validation, events."""

from __future__ import annotations

import asyncio

import pytest

from tests.contacts import (
    CONTACTS,
    count_contacts,
    error_of,
    events_of,
    new_contact,
    post_contact,
    tenant,
)

FIELDS = {"id", "phone", "name", "profile_name", "email", "company", "tags"}


async def test_case_11_format_variants_are_one_contact_per_account(client, db):
    acme = await tenant(db, "contacts:write", "contacts:read")
    created = await new_contact(
        client, acme, phone="+1 (415) 555-0123", name="Ava", email="ava@example.com", tags=["VIP"]
    )
    assert set(created) == FIELDS | {"created_at", "updated_at"}
    assert created["phone"] == "+14155550123"

    again = await post_contact(
        client, acme, phone="+14155550123", name="Someone else", company="Other", tags=["new"]
    )
    assert again.status_code == 200
    assert again.json()["data"] == created  # the existing contact, unchanged
    assert (await post_contact(client, acme, phone=" +1 415-555-0123 ")).status_code == 200
    assert await count_contacts(db, acme.account_id) == 1

    other = await tenant(db, "contacts:write", name="Other shop")
    theirs = await post_contact(client, other, phone="+14155550123", name="Ava elsewhere")
    assert theirs.status_code == 201
    assert theirs.json()["data"]["id"] != created["id"]
    assert theirs.json()["data"]["name"] == "Ava elsewhere"

    tags = await client.get("/api/v1/tags", headers=acme.headers)
    assert [tag["name"] for tag in tags.json()["data"]] == ["VIP"]  # "new" was ignored


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+39 06 1234 5678", "+390612345678"),
        ("+1 201 555 0100", "+12015550100"),
    ],
)
async def test_case_12_numbers_with_a_country_code_are_normalised(client, db, raw, stored):
    acme = await tenant(db, "contacts:write")
    assert (await new_contact(client, acme, phone=raw))["phone"] == stored


@pytest.mark.parametrize(
    "raw",
    [
        "3105550100",
        "0612345678",
        "",
        "   ",
        "+1 415 555 01234567",
        "+١٤١٥٥٥٥٠١٢٣",
        "+1415555\x000123",
    ],
)
async def test_case_12_a_number_without_country_code_is_never_guessed(client, db, raw):
    acme = await tenant(db, "contacts:write")
    error = error_of(await post_contact(client, acme, phone=raw), 400)
    assert error["details"][0]["field"] == "phone"
    assert await count_contacts(db) == 0


async def test_a_new_contact_records_one_event_and_a_found_one_none(client, db):
    acme = await tenant(db, "contacts:write")
    created = await new_contact(client, acme, phone="+14155550123", name="Ava", tags=["b", "A"])
    await post_contact(client, acme, phone="+14155550123")
    events = await events_of(db, acme.account_id, "contact.created")
    assert len(events) == 1
    assert events[0].data == {
        "contact_id": created["id"],
        "phone": "+14155550123",
        "name": "Ava",
        "profile_name": None,
        "email": None,
        "company": None,
        "tags": ["A", "b"],
        "source": "api",
    }


async def test_concurrent_creates_of_one_number_make_one_contact_and_one_event(client, db):
    acme = await tenant(db, "contacts:write")
    responses = await asyncio.gather(
        *(post_contact(client, acme, phone="+14155550123", tags=["Café"]) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert await count_contacts(db) == 1
    assert len(await events_of(db, acme.account_id, "contact.created")) == 1


async def test_optional_fields_are_cleaned(client, db):
    acme = await tenant(db, "contacts:write")
    created = await new_contact(
        client,
        acme,
        phone="+14155550123",
        name="  Ava Thompson ",
        email=" Ava.T@Example.COM ",
        company="",
        tags=["  vip ", "VIP", "Café", "cafe"],
    )
    assert created["name"] == "Ava Thompson"
    assert created["email"] == "Ava.T@example.com"
    assert created["company"] is None
    assert created["tags"] == ["Café", "vip"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "a b@example.com"}, "email"),
        ({"email": "a@@example.com"}, "email"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Ava\x00"}, "name"),
        ({"company": "Acme\u0007"}, "company"),
        ({"tags": [""]}, "tags.0"),
        ({"tags": ["ok", "x" * 65]}, "tags.1"),
        ({"tags": ["line\nbreak"]}, "tags.0"),
        ({"tags": ["ß" * 64]}, "tags.0"),  # folds to 128 characters
        ({"tags": ["\u0301"]}, "tags.0"),  # nothing left once accents are dropped
        ({"nickname": "Ava"}, "body.nickname"),
        ({"tags": "vip"}, "body.tags"),
        ({"name": 5}, "body.name"),
    ],
)
async def test_bad_fields_are_400_and_store_nothing(client, db, body, field):
    acme = await tenant(db, "contacts:write")
    error = error_of(await post_contact(client, acme, phone="+14155550123", **body), 400)
    assert field in {detail["field"] for detail in error["details"]}
    assert await count_contacts(db) == 0


async def test_lone_surrogates_and_nul_in_raw_json_are_400(client, db):
    acme = await tenant(db, "contacts:write")
    for raw in (
        b'{"phone": "+14155550123", "name": "\\ud800"}',
        b'{"phone": "+14155550123", "email": "a\\u0000@example.com"}',
        b'{"phone": "+14155550123", "tags": ["\\udfff"]}',
        b'{"phone": "\\ud83d+14155550123"}',
    ):
        response = await client.post(
            CONTACTS, content=raw, headers={**acme.headers, "Content-Type": "application/json"}
        )
        error_of(response, 400)
    assert await count_contacts(db) == 0


@pytest.mark.parametrize("content", [b"", b"null", b"[]", b"{", b'{"name": "Ava"}'])
async def test_malformed_bodies_are_400(client, db, content):
    acme = await tenant(db, "contacts:write")
    headers = {**acme.headers, "Content-Type": "application/json"}
    error_of(await client.post(CONTACTS, content=content, headers=headers), 400)


async def test_case_5_a_read_only_key_cannot_create(client, db):
    reader = await tenant(db, "contacts:read")
    error = error_of(await post_contact(client, reader, phone="+14155550123"), 403, "forbidden")
    assert "contacts:write" in error["message"]
    assert await count_contacts(db) == 0
    assert (await client.get(CONTACTS, headers=reader.headers)).status_code == 200
    assert (await client.post(CONTACTS, json={"phone": "+14155550123"})).status_code == 401


async def test_an_idempotency_key_replays_the_creation(client, db):
    acme = await tenant(db, "contacts:write")
    headers = {**acme.headers, "Idempotency-Key": "create-ava-1"}
    body = {"phone": "+14155550123", "name": "Ava"}
    first = await client.post(CONTACTS, json=body, headers=headers)
    replay = await client.post(CONTACTS, json=body, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    assert len(await events_of(db, acme.account_id, "contact.created")) == 1
