"""GET and PATCH /contacts/{id}: partial updates, tags replace, foreign and malformed ids."""

from __future__ import annotations

import uuid

import pytest

from tests.contacts import CONTACTS, error_of, new_contact, tenant


@pytest.fixture
async def acme(db):
    return await tenant(db, "contacts:read", "contacts:write")


@pytest.fixture
async def ava(client, acme):
    return await new_contact(
        client,
        acme,
        phone="+14155550123",
        name="Ava",
        email="ava@example.com",
        company="Acme",
        tags=["VIP", "Café"],
    )


async def _patch(client, who, contact_id, **body):
    return await client.patch(f"{CONTACTS}/{contact_id}", json=body, headers=who.headers)


async def test_get_returns_the_contact(client, acme, ava):
    response = await client.get(f"{CONTACTS}/{ava['id']}", headers=acme.headers)
    assert response.status_code == 200
    assert response.json() == {"data": ava}


async def test_patch_changes_only_the_fields_sent(client, acme, ava):
    response = await _patch(client, acme, ava["id"], name="Ava T.")
    assert response.status_code == 200
    data = response.json()["data"]
    assert {k: v for k, v in data.items() if k not in ("name", "updated_at")} == {
        k: v for k, v in ava.items() if k not in ("name", "updated_at")
    }
    assert data["name"] == "Ava T."
    assert data["updated_at"] >= ava["updated_at"]


async def test_null_clears_a_field_and_empty_is_a_no_op(client, acme, ava):
    data = (await _patch(client, acme, ava["id"], email=None, company="  ")).json()["data"]
    assert (data["email"], data["company"], data["name"]) == (None, None, "Ava")
    unchanged = (await _patch(client, acme, ava["id"])).json()["data"]
    assert unchanged == data


async def test_tags_replace_the_whole_set(client, acme, ava):
    data = (await _patch(client, acme, ava["id"], tags=["cafe", "Lead"])).json()["data"]
    assert data["tags"] == ["Café", "Lead"]  # the existing tag keeps its spelling
    assert (await _patch(client, acme, ava["id"], tags=[])).json()["data"]["tags"] == []
    tags = (await client.get("/api/v1/tags", headers=acme.headers)).json()["data"]
    assert {t["name"]: t["contact_count"] for t in tags} == {"VIP": 0, "Café": 0, "Lead": 0}


async def test_patch_without_tags_keeps_them(client, acme, ava):
    data = (await _patch(client, acme, ava["id"], company="Other")).json()["data"]
    assert data["tags"] == ["Café", "VIP"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "+14155550177"}, "phone"),
        ({"phone": None}, "phone"),
        ({"nickname": "A"}, "body.nickname"),
        ({"tags": None}, "tags"),
        ({"tags": ["ok", ""]}, "tags.1"),
        ({"email": "nope"}, "email"),
        ({"name": "A\x00"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Valid", "email": "bad"}, "email"),
    ],
)
async def test_bad_patches_are_400_and_change_nothing(client, acme, ava, body, field):
    error = error_of(await _patch(client, acme, ava["id"], **body), 400)
    assert field in {d["field"] for d in error["details"]}
    current = await client.get(f"{CONTACTS}/{ava['id']}", headers=acme.headers)
    assert current.json()["data"] == ava


async def test_a_lone_surrogate_in_a_patch_is_400(client, acme, ava):
    headers = {**acme.headers, "Content-Type": "application/json"}
    response = await client.patch(
        f"{CONTACTS}/{ava['id']}", content=b'{"company": "x\\udc00"}', headers=headers
    )
    error_of(response, 400)


async def test_another_accounts_contact_is_404_everywhere(client, db, acme, ava):
    other = await tenant(db, "contacts:read", "contacts:write", name="Other shop")
    url = f"{CONTACTS}/{ava['id']}"
    error_of(await client.get(url, headers=other.headers), 404, "not_found")
    error_of(await _patch(client, other, ava["id"], name="Hacked"), 404, "not_found")
    response = await client.post(f"{url}/tags", json={"add": ["x"]}, headers=other.headers)
    error_of(response, 404, "not_found")
    assert (await client.get(url, headers=acme.headers)).json()["data"] == ava


async def test_unknown_and_malformed_ids(client, acme):
    error_of(await client.get(f"{CONTACTS}/{uuid.uuid4()}", headers=acme.headers), 404, "not_found")
    for bad in ("not-a-uuid", "1", "%00"):
        response = await client.get(f"{CONTACTS}/{bad}", headers=acme.headers)
        assert response.status_code in (400, 404)
        assert "error" in response.json()


async def test_reading_and_writing_need_their_scopes(client, db, ava):
    writer = await tenant(db, "contacts:write")
    reader = await tenant(db, "contacts:read")
    url = f"{CONTACTS}/{ava['id']}"
    error_of(await client.get(url, headers=writer.headers), 403, "forbidden")
    error_of(await client.patch(url, json={}, headers=reader.headers), 403, "forbidden")
    response = await client.post(f"{url}/tags", json={"add": ["x"]}, headers=reader.headers)
    error_of(response, 403, "forbidden")
