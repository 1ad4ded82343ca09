"""Settings → WhatsApp numbers over plain HTTP: everyone reads, owners and admins change;
secrets go in and never come back out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.api_keys import another_client, dump_database, log_in_as
from tests.dashboard.support import assert_no_inline_code, post_form, text_of
from tests.helpers import create_account
from tests.whatsapp.inbound_support import create_meta_channel
from wacrm.channels.service import add_sandbox_channel
from wacrm.models import Channel, Role

PAGE = "/settings/numbers"
TOKEN = "EAAG-meta-access-token-0123456789"
APP_SECRET = "app-secret-abcdef0123456789"


def _csrf(person) -> str:
    return str(person.csrf["X-CSRF-Token"])


def _number(**fields: str) -> dict[str, str]:
    return {
        "display_phone": "+1 415 555 0100",
        "phone_number_id": "109876543210987",
        "waba_id": "102290129340398",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        **fields,
    }


async def _channels(db) -> list[Channel]:
    await db.rollback()
    statement = (
        select(Channel).order_by(Channel.created_at).execution_options(populate_existing=True)
    )
    return list((await db.execute(statement)).scalars())


async def test_an_owner_connects_a_number_whose_secrets_never_come_back(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    added = await post_form(client, PAGE, {"csrf_token": _csrf(person), **_number()})
    assert (added.status_code, added.headers["location"]) == (303, PAGE)
    page = await client.get(PAGE)
    text = text_of(page.text)
    assert "Connected +14155550100." in text
    assert "+14155550100" in text and "109876543210987" in text and "102290129340398" in text
    assert "Access token: set" in text and "App secret: set" in text
    assert TOKEN not in page.text and APP_SECRET not in page.text
    assert_no_inline_code(page.text)
    [channel] = await _channels(db)
    assert (channel.kind, channel.is_default) == ("meta", True)  # the first is the default
    assert channel.verify_token in page.text  # what the owner sets in Meta's app
    stored = await dump_database(db)
    assert TOKEN not in stored and APP_SECRET not in stored  # encrypted at rest


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"display_phone": "4155550100"}, "Phone number: must start with + and the country code"),
        ({"display_phone": "+1 415 555 01000"}, "Phone number: is not a valid"),
        ({"phone_number_id": "12ab"}, "Phone number ID: must be Meta's numeric id"),
        ({"phone_number_id": "١٢٣"}, "Phone number ID: must be Meta's numeric id"),
        ({"phone_number_id": ""}, "Phone number ID: is required"),
        ({"waba_id": "waba/../x"}, "WhatsApp Business Account ID: must be Meta's numeric"),
        ({"access_token": "  "}, "Access token: is required"),
        ({"app_secret": "tab\tinside"}, "App secret: is required (printable"),
    ],
)
async def test_bad_numbers_are_a_400_on_the_form_and_store_nothing(client, db, fields, message):
    person = await log_in_as(client, db, Role.ADMIN)
    response = await post_form(client, PAGE, {"csrf_token": _csrf(person), **_number(**fields)})
    assert response.status_code == 400, response.text
    assert message in text_of(response.text)
    assert TOKEN not in response.text and APP_SECRET not in response.text  # typed again
    assert await _channels(db) == []


async def test_a_number_connected_elsewhere_is_a_409_and_non_text_is_a_400(client, db, settings):
    other = await create_account(db, "Other Co")
    await create_meta_channel(db, settings, other.id, phone_number_id="109876543210987")
    person = await log_in_as(client, db, Role.OWNER)
    taken = await post_form(client, PAGE, {"csrf_token": _csrf(person), **_number()})
    assert taken.status_code == 409
    assert "Phone number ID: is already connected" in text_of(taken.text)
    garbled = await client.post(
        PAGE,
        content=f"csrf_token={_csrf(person)}&display_phone=%FF&phone_number_id=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert garbled.status_code == 400
    assert "Phone number: is not valid text (UTF-8)" in text_of(garbled.text)
    assert [c.account_id for c in await _channels(db)] == [other.id]


async def test_the_default_moves_and_a_sandbox_number_can_be_added(client, db, settings):
    person = await log_in_as(client, db, Role.ADMIN)
    first = await create_meta_channel(db, settings, person.account.id)
    sandbox = await post_form(client, f"{PAGE}/sandbox", {"csrf_token": _csrf(person)})
    assert sandbox.status_code == 303
    _, second = await _channels(db)
    assert (second.kind, second.is_default) == ("sandbox", False)

    moved = await post_form(client, f"{PAGE}/{second.id}/default", {"csrf_token": _csrf(person)})
    assert moved.status_code == 303
    assert [c.is_default for c in await _channels(db)] == [False, True]
    assert f"{second.display_phone} is now the default number." in text_of(
        (await client.get(PAGE)).text
    )
    again = await post_form(client, f"{PAGE}/{second.id}/default", {"csrf_token": _csrf(person)})
    assert again.status_code == 303
    assert [c.id for c in await _channels(db) if c.is_default] == [second.id]
    assert first.id != second.id


async def test_no_sandbox_numbers_where_the_sandbox_is_off(client, db, app, settings):
    person = await log_in_as(client, db, Role.OWNER)
    app.state.settings = settings.model_copy(update={"sandbox_enabled": False})
    assert "Add a sandbox number" not in text_of((await client.get(PAGE)).text)
    refused = await post_form(client, f"{PAGE}/sandbox", {"csrf_token": _csrf(person)})
    assert refused.status_code == 409
    assert "The WhatsApp sandbox is off in this deployment." in text_of(refused.text)
    assert await _channels(db) == []


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
async def test_agents_and_viewers_read_the_list_and_their_forged_posts_get_403(
    client, db, app, settings, role
):
    account = await create_account(db)
    channel = await create_meta_channel(db, settings, account.id)
    spare = await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    person = await log_in_as(client, db, role, account)
    page = await client.get(PAGE)
    assert page.status_code == 200
    text = text_of(page.text)
    assert channel.display_phone in text and "Access token: set" in text
    assert "Connect number" not in text and "Make default" not in text
    assert channel.verify_token not in page.text
    assert "Only an owner or admin can connect numbers" in text

    forged = [
        (PAGE, _number(phone_number_id="555")),
        (f"{PAGE}/sandbox", {}),
        (f"{PAGE}/{spare.id}/default", {}),
    ]
    for url, fields in forged:
        response = await post_form(client, url, {"csrf_token": _csrf(person), **fields})
        assert response.status_code == 403, url
        assert "Only an owner or admin can do this." in text_of(response.text)
    assert [(c.id, c.is_default) for c in await _channels(db)] == [
        (channel.id, True),
        (spare.id, False),
    ]


async def test_csrf_and_another_accounts_number_change_nothing(client, db, app, settings):
    other = await create_account(db, "Other Co")
    theirs = await create_meta_channel(db, settings, other.id)
    await add_sandbox_channel(db, settings, account_id=other.id)
    await db.commit()
    person = await log_in_as(client, db, Role.OWNER)
    mine = await add_sandbox_channel(db, settings, account_id=person.account.id)
    await db.commit()
    listed = (await client.get(PAGE)).text
    assert theirs.phone_number_id not in listed and str(theirs.id) not in listed

    for token in (None, "", "wrong"):
        fields = {} if token is None else {"csrf_token": token}
        for url in (PAGE, f"{PAGE}/sandbox", f"{PAGE}/{mine.id}/default"):
            response = await post_form(client, url, {**fields, **_number(phone_number_id="7")})
            assert response.status_code == 403, url
    foreign = await post_form(client, f"{PAGE}/{theirs.id}/default", {"csrf_token": _csrf(person)})
    assert foreign.status_code == 404
    assert "Page not found" in text_of(foreign.text)
    async with another_client(app) as anonymous:
        assert (await anonymous.get(PAGE)).status_code == 303  # to the login page
    channels = await _channels(db)
    assert len(channels) == 3
    assert [c.is_default for c in channels if c.account_id == other.id] == [True, False]
