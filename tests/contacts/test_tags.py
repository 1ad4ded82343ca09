"""Tags: folding, POST /contacts/{id}/tags add/remove, GET /tags, one tag per name."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.contacts import CONTACTS, TAGS, error_of, new_contact, tenant, walk
from wacrm.contacts.tags import clean_tag_name, fold
from wacrm.models import Tag


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Café", "cafe"),
        ("CAFE", "cafe"),
        ("Cafe\u0301", "Café"),  # decomposed and composed accents
        ("Straße", "STRASSE"),
        ("Søren", "soren"),
        ("İstanbul", "istanbul"),
        ("ﬁle", "file"),
        ("VIP  customer", "vip customer"),
    ],
)
def test_names_that_fold_together(a, b):
    assert fold(a) == fold(b)


def test_names_that_stay_apart():
    assert len({fold(name) for name in ("cafe", "café au lait", "caff", "café-2")}) == 4


@pytest.mark.parametrize("raw", ["", "   ", "a\x00", "a\nb", "x" * 65, "\u0301\u0301", "ß" * 33])
def test_bad_names_are_refused(raw):
    with pytest.raises(ValueError):
        clean_tag_name(raw)


def test_a_name_is_trimmed_and_kept_as_written():
    assert clean_tag_name("  Café VIP ").name == "Café VIP"
    assert clean_tag_name("x" * 64).key == "x" * 64


@pytest.fixture
async def acme(db):
    return await tenant(db, "contacts:read", "contacts:write")


async def _change(client, who, contact_id, **body):
    return await client.post(f"{CONTACTS}/{contact_id}/tags", json=body, headers=who.headers)


async def test_add_and_remove_leave_other_tags_alone(client, acme):
    ava = await new_contact(client, acme, phone="+14155550123", tags=["VIP", "Café", "Lead"])
    response = await _change(client, acme, ava["id"], add=["NEW", "vip"], remove=["CAFE", "gone"])
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["tags"] == ["Lead", "NEW", "VIP"]
    assert data["updated_at"] >= ava["updated_at"]


async def test_an_accented_spelling_matches_the_existing_tag(client, db, acme):
    ava = await new_contact(client, acme, phone="+14155550123", tags=["cafe"])
    ben = await new_contact(client, acme, phone="+14155550177")
    data = (await _change(client, acme, ben["id"], add=["CAFÉ"])).json()["data"]
    assert data["tags"] == ["cafe"]
    tags = (await client.get(TAGS, headers=acme.headers)).json()["data"]
    assert [(t["name"], t["contact_count"]) for t in tags] == [("cafe", 2)]
    removed = (await _change(client, acme, ava["id"], remove=["Café"])).json()["data"]
    assert removed["tags"] == []


async def test_a_name_in_both_lists_is_400(client, acme):
    ava = await new_contact(client, acme, phone="+14155550123", tags=["VIP"])
    error = error_of(await _change(client, acme, ava["id"], add=["Café"], remove=["CAFE"]), 400)
    assert error["details"][0]["field"] == "remove"
    contact = await client.get(f"{CONTACTS}/{ava['id']}", headers=acme.headers)
    assert contact.json()["data"]["tags"] == ["VIP"]


@pytest.mark.parametrize(
    "body",
    [
        {"add": [""]},
        {"add": ["ok", "a\x00"]},
        {"remove": ["x" * 65]},
        {"add": "vip"},
        {"tags": ["vip"]},
        {"add": ["x"] * 101},
    ],
)
async def test_bad_tag_changes_are_400(client, acme, body):
    ava = await new_contact(client, acme, phone="+14155550123", tags=["VIP"])
    error_of(await _change(client, acme, ava["id"], **body), 400)
    tags = (await client.get(TAGS, headers=acme.headers)).json()["data"]
    assert [t["name"] for t in tags] == ["VIP"]


async def test_an_empty_change_is_a_no_op(client, acme):
    ava = await new_contact(client, acme, phone="+14155550123", tags=["VIP"])
    data = (await _change(client, acme, ava["id"])).json()["data"]
    assert data == ava


async def test_concurrent_first_uses_of_a_name_make_one_tag(client, db, acme):
    contacts = [await new_contact(client, acme, phone=f"+1415555010{n}") for n in range(6)]
    spellings = ["Café", "cafe", "CAFE", "Cafe\u0301", "café", "CAFÉ"]
    responses = await asyncio.gather(
        *(
            _change(client, acme, c["id"], add=[name, "Zeta", "alpha"])
            for c, name in zip(contacts, spellings, strict=True)
        )
    )
    assert [r.status_code for r in responses] == [200] * 6
    count = select(func.count()).select_from(Tag).where(Tag.account_id == acme.account_id)
    assert (await db.execute(count)).scalar_one() == 3
    tags = (await client.get(TAGS, headers=acme.headers)).json()["data"]
    assert sorted(t["contact_count"] for t in tags) == [6, 6, 6]


async def test_tags_are_per_account(client, db, acme):
    await new_contact(client, acme, phone="+14155550123", tags=["VIP"])
    other = await tenant(db, "contacts:read", "contacts:write", name="Other shop")
    await new_contact(client, other, phone="+14155550123", tags=["vip", "Secret"])
    mine = (await client.get(TAGS, headers=acme.headers)).json()["data"]
    assert [(t["name"], t["contact_count"]) for t in mine] == [("VIP", 1)]
    theirs = (await client.get(TAGS, headers=other.headers)).json()["data"]
    assert sorted(t["name"] for t in theirs) == ["Secret", "vip"]


async def test_tags_list_is_paginated_and_needs_contacts_read(client, db, acme):
    await new_contact(client, acme, phone="+14155550123", tags=[f"tag {n}" for n in range(5)])
    items = await walk(client, TAGS, acme, limit=2)
    assert sorted(t["name"] for t in items) == [f"tag {n}" for n in range(5)]
    assert set(items[0]) == {"id", "name", "contact_count", "created_at"}
    error_of(await client.get(TAGS, params={"limit": 0}, headers=acme.headers), 400)
    error_of(await client.get(TAGS, params={"cursor": "%%%"}, headers=acme.headers), 400)
    writer = await tenant(db, "contacts:write")
    error_of(await client.get(TAGS, headers=writer.headers), 403, "forbidden")
