"""Contacts over plain HTTP: search, tag filter, the detail page, and tag changes by role."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.api_keys import another_client, log_in_as
from tests.conversations import create_conversation
from tests.dashboard.support import assert_no_inline_code, post_form, text_of
from tests.helpers import create_account
from wacrm.contacts import service as contacts
from wacrm.models import ContactTag, Role, Tag


def _csrf(person) -> str:
    return str(person.csrf["X-CSRF-Token"])


async def _contact(db, account_id, phone, **fields):
    view, _ = await contacts.find_or_create_contact(db, account_id, phone=phone, **fields)
    await db.commit()
    return view.contact


async def _tags_of(db, contact_id) -> list[str]:
    await db.rollback()
    statement = (
        select(Tag.name)
        .join(ContactTag, ContactTag.tag_id == Tag.id)
        .where(ContactTag.contact_id == contact_id)
        .order_by(Tag.name)
    )
    return list((await db.execute(statement)).scalars())


async def test_search_by_name_phone_or_email_and_filter_by_tag(client, db):
    person = await log_in_as(client, db, Role.VIEWER)
    account_id = person.account.id
    ana = await _contact(db, account_id, "+14155550101", name="Ana Lima", tags=["VIP"])
    bo = await _contact(db, account_id, "+442079460958", email="bo@example.com", tags=["vip"])
    cy = await _contact(db, account_id, "+14155550103", name="Cy", company="Initech")
    other = await create_account(db, "Other Co")
    await _contact(db, other.id, "+14155550104", name="Ana Elsewhere", tags=["VIP"])

    def shown(response) -> set[str]:
        assert response.status_code == 200, response.text
        return {c.phone for c in (ana, bo, cy) if f"/contacts/{c.id}" in response.text}

    everyone = await client.get("/contacts")
    assert shown(everyone) == {ana.phone, bo.phone, cy.phone}
    assert "Ana Elsewhere" not in everyone.text
    assert_no_inline_code(everyone.text)
    assert shown(await client.get("/contacts", params={"search": "ana"})) == {ana.phone}
    assert shown(await client.get("/contacts", params={"search": "+44 20"})) == {bo.phone}
    assert shown(await client.get("/contacts", params={"search": "BO@EXAMPLE"})) == {bo.phone}
    assert shown(await client.get("/contacts", params={"tag": "vip"})) == {ana.phone, bo.phone}
    both = await client.get("/contacts", params={"tag": "VIP", "search": "lima"})
    assert shown(both) == {ana.phone}
    nobody = await client.get("/contacts", params={"search": "zzz"})
    assert shown(nobody) == set() and "No contact matches." in text_of(nobody.text)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"search": "a\x00b"}, "Search: must not contain NUL characters"),
        ({"search": "x" * 201}, "Search: must be at most 200 characters"),
        ({"tag": "   "}, "Tag: must not be empty"),
        ({"tag": "bad\x07tag"}, "Tag: must not contain control characters"),
        ({"cursor": "not-a-cursor"}, "Page: malformed, foreign or stale cursor"),
    ],
)
async def test_bad_search_input_is_a_400_on_the_page(client, db, params, message):
    person = await log_in_as(client, db, Role.AGENT)
    await _contact(db, person.account.id, "+14155550101", name="Ana")
    response = await client.get("/contacts", params=params)
    assert response.status_code == 400
    assert message in text_of(response.text)
    assert "Ana" not in text_of(response.text)


async def test_the_detail_shows_tags_and_the_conversation_and_agents_change_tags(client, db):
    person = await log_in_as(client, db, Role.AGENT)
    contact = await _contact(db, person.account.id, "+14155550101", name="Ana", tags=["Lead"])
    page = await client.get(f"/contacts/{contact.id}")
    assert "No conversation yet." in text_of(page.text)
    conversation = await create_conversation(db, person.account.id, contact.phone)
    page = await client.get(f"/contacts/{contact.id}")
    assert f'href="/inbox/{conversation.id}"' in page.text
    assert "Lead" in text_of(page.text)

    added = await post_form(
        client, f"/contacts/{contact.id}/tags", {"csrf_token": _csrf(person), "tag": " Café "}
    )
    assert (added.status_code, added.headers["location"]) == (303, f"/contacts/{contact.id}")
    assert await _tags_of(db, contact.id) == ["Café", "Lead"]
    assert "Tagged “Café”." in text_of((await client.get(f"/contacts/{contact.id}")).text)

    removed = await post_form(
        client, f"/contacts/{contact.id}/tags/remove", {"csrf_token": _csrf(person), "tag": "LEAD"}
    )
    assert removed.status_code == 303
    assert await _tags_of(db, contact.id) == ["Café"]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("", "Tag: must not be empty"),
        ("x" * 65, "Tag: must be at most 64 characters"),
        ("line\nbreak", "Tag: must not contain control characters"),
    ],
)
async def test_a_bad_tag_is_a_400_on_the_page_and_changes_nothing(client, db, tag, message):
    person = await log_in_as(client, db, Role.ADMIN)
    contact = await _contact(db, person.account.id, "+14155550101", tags=["Lead"])
    response = await post_form(
        client, f"/contacts/{contact.id}/tags", {"csrf_token": _csrf(person), "tag": tag}
    )
    assert response.status_code == 400
    assert message in text_of(response.text)
    assert await _tags_of(db, contact.id) == ["Lead"]
    non_utf8 = await client.post(
        f"/contacts/{contact.id}/tags",
        content=f"csrf_token={_csrf(person)}&tag=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert non_utf8.status_code == 400
    assert "Tag: is not valid text (UTF-8)" in text_of(non_utf8.text)
    assert await _tags_of(db, contact.id) == ["Lead"]


async def test_viewers_csrf_and_foreign_contacts_change_nothing(client, db, app):
    account = await create_account(db)
    contact = await _contact(db, account.id, "+14155550101", tags=["Lead"])
    other = await create_account(db, "Other Co")
    theirs = await _contact(db, other.id, "+14155550102", name="Theirs", tags=["Lead"])
    viewer = await log_in_as(client, db, Role.VIEWER, account)
    page = await client.get(f"/contacts/{contact.id}")
    assert "Add tag" not in text_of(page.text) and "/tags/remove" not in page.text
    for path, tag in (("tags", "Forged"), ("tags/remove", "Lead")):
        response = await post_form(
            client, f"/contacts/{contact.id}/{path}", {"csrf_token": _csrf(viewer), "tag": tag}
        )
        assert response.status_code == 403
        assert "A viewer can read but not change anything." in text_of(response.text)

    async with another_client(app) as agent_client:
        agent = await log_in_as(agent_client, db, Role.AGENT, account)
        no_token = await post_form(agent_client, f"/contacts/{contact.id}/tags", {"tag": "X"})
        assert no_token.status_code == 403
        assert (await agent_client.get(f"/contacts/{theirs.id}")).status_code == 404
        for path in ("tags", "tags/remove"):
            response = await post_form(
                agent_client,
                f"/contacts/{theirs.id}/{path}",
                {"csrf_token": _csrf(agent), "tag": "Lead"},
            )
            assert response.status_code == 404
            assert "Page not found" in text_of(response.text)
    assert await _tags_of(db, contact.id) == ["Lead"]
    assert await _tags_of(db, theirs.id) == ["Lead"]
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(Tag)) == 2
