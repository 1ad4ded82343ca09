"""Every Meta message type, from the fixture files through the real endpoint, signed: the
stored ``type`` and ``content``; anything unknown or unusable is kept as ``unsupported``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.whatsapp.inbound_support import (
    FIXTURES,
    create_meta_channel,
    envelope,
    fixture_body,
    mount_webhook,
    one,
    post_signed,
    rows,
)
from wacrm.models import Contact, Event, InboundPayload, InboxState, Message

MEDIA = "https://lookaside.fbsbx.com"

EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "message_text.json": (
        "text",
        {"body": "Hi! Do you still have the blue ceramic planter in stock?"},
    ),
    "message_text_reply.json": ("text", {"body": "Yes, the large one please"}),
    "message_image.json": (
        "image",
        {
            "media_id": "1800555000000101",
            "mime_type": "image/jpeg",
            "sha256": "YQXWzHavQAMl6U1YjOURvlv9u3O0N9xR7KQ5F9ekPj0=",
            "caption": "This is the crack I mentioned",
        },
    ),
    "message_video.json": (
        "video",
        {
            "media_id": "1800555000000102",
            "mime_type": "video/mp4",
            "sha256": "DKsclhdAT68rJOIh4YnKWUWBPhTT92Y0WwnKE7vij/w=",
            "caption": "Unboxing video",
        },
    ),
    "message_audio.json": (
        "audio",
        {
            "media_id": "1800555000000103",
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "btiRnOIEkKXjrYYwpPq2lHUper0H23ORjdXzb8+usRs=",
            "voice": True,
        },
    ),
    "message_document.json": (
        "document",
        {
            "media_id": "1800555000000104",
            "mime_type": "application/pdf",
            "sha256": "Q8wj+lK4e0zB0CtbEUFUFR1q3dsXyf3cBrAn+pniQAg=",
            "caption": "Signed quote attached",
            "filename": "quote-Q1042-signed.pdf",
        },
    ),
    "message_sticker.json": (
        "sticker",
        {
            "media_id": "1800555000000105",
            "mime_type": "image/webp",
            "sha256": "V8SxOkxzNecvFmngUG6ZII3x2gUMEl2meLI+u1W/TGE=",
            "animated": True,
        },
    ),
    "message_location.json": (
        "location",
        {
            "latitude": 37.7793,
            "longitude": -122.4193,
            "name": "Example Coffee Roasters",
            "address": "1 Fictional Plaza, San Francisco, CA 94103",
            "url": "https://example.com/places/example-coffee",
        },
    ),
    "message_interactive_button_reply.json": (
        "interactive",
        {"kind": "button_reply", "id": "confirm-appt-42", "title": "Confirm"},
    ),
    "message_interactive_list_reply.json": (
        "interactive",
        {
            "kind": "list_reply",
            "id": "ship-express",
            "title": "Express shipping",
            "description": "Arrives in 1-2 business days",
        },
    ),
    "message_button.json": ("button", {"payload": "STOP_PROMOS", "text": "Stop promotions"}),
    "message_reaction.json": (
        "reaction",
        {
            "message_id": "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUU5MUQyQzZCMTJCNTg3N0U1NwA=",
            "emoji": "\U0001f44d",
            "removed": False,
        },
    ),
    "message_reaction_removed.json": (
        "reaction",
        {
            "message_id": "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRTc5MTQ2QzZFOTZENzY4Rjc2MgA=",
            "emoji": "",
            "removed": True,
        },
    ),
    "message_reaction_removed_no_emoji.json": (
        "reaction",
        {
            "message_id": "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUJENzZGNTlGOUMyMTA3MzAwRQA=",
            "emoji": "",
            "removed": True,
        },
    ),
    "message_order.json": (
        "order",
        {
            "catalog_id": "7700555000000001",
            "text": "Please gift-wrap the mug",
            "product_items": [
                {
                    "product_retailer_id": "SKU-MUG-BLUE",
                    "quantity": 2,
                    "item_price": 14.5,
                    "currency": "USD",
                },
                {
                    "product_retailer_id": "SKU-TEA-EARLGREY",
                    "quantity": 1,
                    "item_price": 9.99,
                    "currency": "USD",
                },
            ],
        },
    ),
    "message_system.json": (
        "system",
        {
            "type": "user_changed_number",
            "body": "User Nina Alvarez changed from 14155550136 to 14155550199",
            "wa_id": "14155550199",
        },
    ),
    "message_system_legacy.json": (
        "system",
        {
            "type": "user_changed_number",
            "body": "User Omar Farouk changed from 14155550137 to 14155550198",
            "wa_id": "14155550198",
        },
    ),
}

# Checked key by key: these keep nested objects as Meta sent them.
SPECIAL = {
    "message_contacts.json",
    "message_referral.json",
    "message_unsupported.json",
}


@pytest.fixture
def app(app):
    return mount_webhook(app)


@pytest.fixture
async def channel(db, settings):
    from tests.helpers import create_account

    account = await create_account(db)
    return await create_meta_channel(db, settings, account.id)


def _fixture_message(name: str) -> dict[str, Any]:
    document = json.loads(fixture_body(name))
    return document["entry"][0]["changes"][0]["value"]["messages"][0]


async def _post_fixture(client, db, name: str) -> Message:
    response = await post_signed(client, fixture_body(name))
    assert response.status_code == 200
    payload = await one(db, InboundPayload)
    assert (payload.state, payload.last_error) == (InboxState.DONE, None)
    return await one(db, Message)


def test_every_message_fixture_is_covered():
    files = {path.name for path in FIXTURES.glob("message_*.json")}
    assert files == set(EXPECTED) | SPECIAL


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_message_type_is_parsed(client, db, channel, name):
    message = await _post_fixture(client, db, name)
    expected_type, expected_content = EXPECTED[name]
    raw = _fixture_message(name)
    assert (message.type, message.content) == (expected_type, expected_content)
    assert message.wamid == raw["id"]
    assert message.direction == "inbound"
    assert message.status == "received"
    assert message.reply_to_wamid == raw.get("context", {}).get("id")
    contact = await one(db, Contact)
    assert contact.phone == "+" + raw["from"]
    (event,) = await rows(db, Event, Event.type == "message.received")
    assert (event.data["type"], event.data["content"]) == (expected_type, expected_content)


async def test_a_reply_keeps_the_quoted_wamid(client, db, channel):
    message = await _post_fixture(client, db, "message_text_reply.json")
    assert message.reply_to_wamid == (
        "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUY4QTkxRUY4MjVGM0U4QzEzOQA="
    )


async def test_a_system_message_without_contacts_still_finds_its_sender(client, db, channel):
    await _post_fixture(client, db, "message_system.json")
    contact = await one(db, Contact)
    assert (contact.phone, contact.profile_name) == ("+14155550136", None)


async def test_a_shared_contact_card_is_kept_whole(client, db, channel):
    message = await _post_fixture(client, db, "message_contacts.json")
    assert message.type == "contacts"
    (card,) = message.content["contacts"]
    assert card == _fixture_message("message_contacts.json")["contacts"][0]
    assert card["name"]["formatted_name"] == "Ivan Petrov"
    assert card["phones"][0]["wa_id"] == "14155550188"


async def test_an_ad_referral_is_kept_next_to_the_text(client, db, channel):
    message = await _post_fixture(client, db, "message_referral.json")
    assert message.type == "text"
    assert message.content["body"] == "Hi, I saw your ad. Is the spring sale still on?"
    referral = message.content["referral"]
    assert referral == _fixture_message("message_referral.json")["referral"]
    assert referral["ctwa_clid"] == "ARAkFixtureClickId0001"


async def test_metas_unsupported_type_is_kept_raw(client, db, channel):
    message = await _post_fixture(client, db, "message_unsupported.json")
    raw = _fixture_message("message_unsupported.json")
    assert message.type == "unsupported"
    assert message.content == {
        "original_type": "unsupported",
        "unsupported_type": "poll_creation",
        "errors": raw["errors"],
        "raw": raw,
    }


def _message_of(message_type: str, wamid: str, **body: Any) -> dict[str, Any]:
    return {
        "from": "14155550123",
        "id": wamid,
        "timestamp": "1750000100",
        "type": message_type,
        **body,
    }


@pytest.mark.parametrize(
    ("message", "original_type"),
    [
        (_message_of("hologram", "wamid.U1", hologram={"shape": "cube"}), "hologram"),
        (_message_of("text", "wamid.U2"), "text"),  # no text object
        (_message_of("text", "wamid.U3", text="plain string"), "text"),
        (_message_of("text", "wamid.U3b", text=["a list"]), "text"),
        (_message_of("image", "wamid.U4", image={"caption": "no id"}), "image"),
        (_message_of("location", "wamid.U5", location={"latitude": "north"}), "location"),
        (_message_of("contacts", "wamid.U6", contacts=[]), "contacts"),
        (_message_of("contacts", "wamid.U6b", contacts={"name": "not a list"}), "contacts"),
        (_message_of("interactive", "wamid.U7", interactive={"type": "carousel"}), "interactive"),
        (_message_of("reaction", "wamid.U8", reaction={"emoji": "x"}), "reaction"),
        (_message_of("", "wamid.U9"), None),
        ({k: v for k, v in _message_of("text", "wamid.U10").items() if k != "type"}, None),
    ],
)
async def test_unknown_or_unusable_messages_are_kept_as_unsupported(
    client, db, channel, message, original_type
):
    response = await post_signed(client, envelope({"messages": [message]}))
    assert response.status_code == 200
    stored = await one(db, Message)
    assert stored.type == "unsupported"
    assert stored.content["original_type"] == original_type
    assert stored.content["raw"] == message


async def test_flow_replies_forwarding_and_odd_values_are_kept(client, db, channel):
    flow = _message_of(
        "interactive",
        "wamid.FLOW1",
        interactive={
            "type": "nfm_reply",
            "nfm_reply": {"name": "flow", "body": "Sent", "response_json": '{"a": 1}'},
        },
        context={"forwarded": True},
    )
    location = _message_of(
        "location", "wamid.LOC1", location={"latitude": "1.5", "longitude": 2, "name": 7}
    )
    response = await post_signed(client, envelope({"messages": [flow, location]}))
    assert response.status_code == 200
    stored = await one(db, Message, Message.wamid == "wamid.FLOW1")
    assert stored.content == {
        "kind": "nfm_reply",
        "name": "flow",
        "body": "Sent",
        "response_json": '{"a": 1}',
        "forwarded": True,
    }
    stored = await one(db, Message, Message.wamid == "wamid.LOC1")
    assert stored.content == {
        "latitude": 1.5,
        "longitude": 2,
        "name": None,
        "address": None,
        "url": None,
    }
