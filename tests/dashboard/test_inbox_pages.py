"""The inbox over plain HTTP: order and pages, unread counts, ticks, and every refused reply.

Sends that reach the sandbox run against a real server (``running_app``); refusals happen
before anything is sent, so the in-process app serves them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from tests.api_keys import another_client, log_in_as
from tests.conversations import add_message, create_conversation
from tests.dashboard.support import (
    assert_no_inline_code,
    csrf_of,
    page_login,
    post_form,
    text_of,
)
from tests.helpers import create_account
from tests.messages.test_end_to_end import running_app
from tests.whatsapp.inbound_support import create_meta_channel, inbound_text, post_signed
from wacrm.channels.service import add_sandbox_channel
from wacrm.kit.clock import utcnow
from wacrm.models import Conversation, ConversationStatus, Direction, Message, MessageStatus, Role

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_CONVERSATION_LINK = re.compile(r'href="/inbox/([0-9a-f-]{36})"')
_NEXT = re.compile(r'href="(/inbox\?[^"]*cursor=[^"]*)">Older conversations')


@pytest.fixture
def settings(settings):
    # Meta numbers' template lists are asked of a port that refuses at once, not the internet.
    return settings.model_copy(update={"graph_base_url": "http://127.0.0.1:9"})


def _csrf(person) -> str:
    return str(person.csrf["X-CSRF-Token"])


async def _messages(db) -> int:
    await db.rollback()
    return int(await db.scalar(select(func.count()).select_from(Message)) or 0)


async def _unread(db, conversation_id) -> int:
    await db.rollback()
    return int(
        await db.scalar(select(Conversation.unread_count).where(Conversation.id == conversation_id))
        or 0
    )


async def test_the_inbox_lists_by_latest_activity_across_pages_each_once(client, db):
    person = await log_in_as(client, db, Role.VIEWER)
    account_id = person.account.id
    expected = []
    for n in range(30):
        # Ties on the same moment, conversations that never had a message (their start
        # counts), and activity that overtakes an older start.
        activity = T0 + timedelta(minutes=n // 3)
        fields = {"created_at": T0 - timedelta(days=1)}
        if n % 5 == 0:
            fields = {"created_at": activity}
        else:
            fields["last_message_at"] = activity
        conversation = await create_conversation(db, account_id, f"+1415555{n:04d}", **fields)
        expected.append((activity, conversation.id))
    other = await create_account(db, "Other Co")
    foreign = await create_conversation(db, other.id, "+14155559999", last_message_at=T0)

    seen: list[str] = []
    url: str | None = "/inbox"
    pages = 0
    while url:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        seen += _CONVERSATION_LINK.findall(page.text)
        found = _NEXT.search(page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    expected.sort(key=lambda pair: (pair[0], pair[1]), reverse=True)
    assert seen == [str(conversation_id) for _, conversation_id in expected]
    assert pages == 2 and str(foreign.id) not in seen


async def test_status_filter_and_bad_filters_or_cursors_are_clear_400s(client, db, app):
    person = await log_in_as(client, db, Role.AGENT)
    open_one = await create_conversation(db, person.account.id, "+14155550101")
    closed = await create_conversation(
        db, person.account.id, "+14155550102", status=ConversationStatus.CLOSED.value
    )
    listed = await client.get("/inbox", params={"status": "closed"})
    assert f"/inbox/{closed.id}" in listed.text and f"/inbox/{open_one.id}" not in listed.text

    other = await create_account(db)
    async with another_client(app) as stranger:
        await log_in_as(stranger, db, Role.OWNER, other)
        for n in range(30):
            await create_conversation(db, other.id, f"+1415555{n:04d}")
        theirs = (await stranger.get("/inbox")).text
    foreign_cursor = _NEXT.search(theirs).group(1).split("cursor=")[1]  # type: ignore[union-attr]

    for params in (
        {"status": "archived"},
        {"status": "\x00"},
        {"cursor": "%%%"},
        {"cursor": "bnVsbA"},
        {"cursor": foreign_cursor},
        {"cursor": "x" * 5000},
    ):
        response = await client.get("/inbox", params=params)
        assert response.status_code == 400, (params, response.status_code)
        assert "There is a problem" in text_of(response.text)
        assert _CONVERSATION_LINK.findall(response.text) == []


async def test_opening_a_conversation_marks_it_read_for_agents_not_viewers(
    client, db, app, settings
):
    account = await create_account(db)
    await create_meta_channel(db, settings, account.id)
    assert (
        await post_signed(client, inbound_text("wamid.IN1", body="Hi there"))
    ).status_code == 200
    assert (await post_signed(client, inbound_text("wamid.IN2", body="Anyone?"))).status_code == 200
    conversation = (await db.execute(select(Conversation))).scalar_one()
    assert conversation.unread_count == 2

    async with another_client(app) as viewer:
        await log_in_as(viewer, db, Role.VIEWER, account)
        listed = await viewer.get("/inbox")
        assert "2 unread" in text_of(listed.text)
        page = await viewer.get(f"/inbox/{conversation.id}")
        assert page.status_code == 200
        assert "A viewer can read conversations but not answer them." in text_of(page.text)
        assert (await viewer.get(f"/inbox/{conversation.id}/thread")).status_code == 200
    assert await _unread(db, conversation.id) == 2

    await log_in_as(client, db, Role.AGENT, account)
    page = await client.get(f"/inbox/{conversation.id}")
    text = text_of(page.text)
    assert "Ava Thompson" in text and "Hi there" in text and "Anyone?" in text
    assert text.index("Hi there") < text.index("Anyone?")  # a thread reads oldest first
    assert await _unread(db, conversation.id) == 0
    assert "0" in text_of((await client.get("/inbox/rows")).text)
    assert_no_inline_code(page.text)


async def test_ticks_show_sent_delivered_read_and_failed_with_metas_error(client, db):
    person = await log_in_as(client, db, Role.VIEWER)
    conversation = await create_conversation(db, person.account.id, "+14155550123")
    statuses = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ]
    for n, status in enumerate(statuses):
        await add_message(
            db, conversation, T0 + timedelta(minutes=n), direction=Direction.OUTBOUND, status=status
        )
    error = {"code": 131047, "title": "Re-engagement message", "details": "More than 24 hours"}
    await add_message(
        db,
        conversation,
        T0 + timedelta(minutes=5),
        direction=Direction.OUTBOUND,
        status=MessageStatus.FAILED,
        error=error,
    )
    fragment = (await client.get(f"/inbox/{conversation.id}/thread")).text
    assert "<html" not in fragment  # a piece of the page, for the refresh script
    for status in ("sent", "delivered", "read", "failed"):
        assert f'class="tick tick-{status}"' in fragment
    text = text_of(fragment)
    assert "✓ Sent" in text and "✓✓ Delivered" in text and "✓✓ Read" in text
    assert "Re-engagement message — More than 24 hours (code 131047)" in text


async def _agent_with_open_window(client, db, settings, *, window_open: bool = True):
    person = await log_in_as(client, db, Role.AGENT)
    await create_meta_channel(db, settings, person.account.id)
    last_inbound = utcnow() - (timedelta(hours=1) if window_open else timedelta(hours=25))
    conversation = await create_conversation(
        db, person.account.id, "+14155550123", last_inbound_at=last_inbound
    )
    return person, conversation


@pytest.mark.parametrize("window_open", [True, False])
async def test_the_window_banner_tells_a_viewer_they_read_only(
    client, db, app, settings, window_open
):
    person, conversation = await _agent_with_open_window(
        client, db, settings, window_open=window_open
    )
    as_agent = text_of((await client.get(f"/inbox/{conversation.id}")).text)
    async with another_client(app) as viewer:
        await log_in_as(viewer, db, Role.VIEWER, person.account)
        as_viewer = text_of((await viewer.get(f"/inbox/{conversation.id}")).text)

    free, template_only = "you can reply freely", "WhatsApp allows only an approved template"
    assert (free in as_agent, template_only in as_agent) == (window_open, not window_open)
    assert "read this conversation only" not in as_agent
    assert "You can read this conversation only: a viewer cannot reply." in as_viewer
    assert free not in as_viewer and template_only not in as_viewer


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("   ", "must not be empty"),
        ("nul \x00 here", "must not contain NUL characters"),
        ("x" * 4097, "must be at most 4096 characters"),
        ("x" * 9000, "at most 8192 characters"),
    ],
)
async def test_a_bad_reply_is_a_400_on_the_page_and_sends_nothing(
    client, db, settings, text, message
):
    person, conversation = await _agent_with_open_window(client, db, settings)
    response = await post_form(
        client, f"/inbox/{conversation.id}/reply", {"csrf_token": _csrf(person), "text": text}
    )
    assert response.status_code == 400, response.text
    assert message in text_of(response.text)
    assert await _messages(db) == 0


async def test_a_reply_outside_the_window_is_refused_and_offers_templates(client, db, settings):
    person, conversation = await _agent_with_open_window(client, db, settings, window_open=False)
    page = await client.get(f"/inbox/{conversation.id}")
    assert "Send a template" in text_of(page.text)
    assert 'name="text"' not in page.text

    forged = await post_form(
        client, f"/inbox/{conversation.id}/reply", {"csrf_token": _csrf(person), "text": "Hi"}
    )
    assert forged.status_code == 409
    assert "only a template message can be sent now" in text_of(forged.text)
    assert await _messages(db) == 0


async def test_viewers_forged_posts_csrf_and_foreign_conversations_change_nothing(
    client, db, app, settings
):
    owner = await create_account(db)
    await create_meta_channel(db, settings, owner.id)
    mine = await create_conversation(
        db, owner.id, "+14155550123", last_inbound_at=utcnow(), unread_count=3
    )
    other = await create_account(db, "Other Co")
    theirs = await create_conversation(db, other.id, "+14155550124", last_inbound_at=utcnow())
    viewer = await log_in_as(client, db, Role.VIEWER, owner)

    reply = {"csrf_token": _csrf(viewer), "text": "forged"}
    template = {"csrf_token": _csrf(viewer), "template": "hello_world:en_US"}
    for url, fields in (
        (f"/inbox/{mine.id}/reply", reply),
        (f"/inbox/{mine.id}/template", template),
    ):
        response = await post_form(client, url, fields)
        assert response.status_code == 403, url
        assert "A viewer can read but not change anything." in text_of(response.text)

    async with another_client(app) as agent_client:
        agent = await log_in_as(agent_client, db, Role.AGENT, owner)
        for token in (None, "", "wrong"):
            fields = {"text": "no token"} | ({} if token is None else {"csrf_token": token})
            response = await post_form(agent_client, f"/inbox/{mine.id}/reply", fields)
            assert response.status_code == 403
            assert "did not come from this dashboard" in text_of(response.text)
        for url in (f"/inbox/{theirs.id}", f"/inbox/{theirs.id}/thread", "/inbox/not-a-uuid"):
            response = await agent_client.get(url)
            assert response.status_code == 404, url
            assert "Page not found" in text_of(response.text)
        for path in ("reply", "template"):
            response = await post_form(
                agent_client,
                f"/inbox/{theirs.id}/{path}",
                {"csrf_token": _csrf(agent), "text": "x", "template": "hello_world:en_US"},
            )
            assert response.status_code == 404, path
    assert await _messages(db) == 0
    assert await _unread(db, mine.id) == 3


@pytest.mark.slow
async def test_templates_from_the_sandbox_are_sent_and_a_wrong_one_stores_nothing(
    settings, db, app
):
    account = await create_account(db)
    await add_sandbox_channel(db, settings, account_id=account.id)
    conversation = await create_conversation(db, account.id, "+14155550188")
    async with running_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        await page_login(http, account.owner_email, account.owner_password)
        url = f"/inbox/{conversation.id}"
        page = await http.get(url)
        options = re.findall(r'<option value="([^"]+)"', page.text)
        assert "hello_world:en_US" in options and "order_update:es" in options
        chosen = await http.get(url, params={"template": "order_update:en_US"})
        assert "Hi {{1}}, your order {{2}} is on its way." in text_of(chosen.text)
        assert len(re.findall(r'name="params"', chosen.text)) == 2
        token = csrf_of(chosen.text)

        refusals = [
            ({"template": "order_update:en_US", "params": ["Ana"]}, "fill in all 2 values"),
            ({"template": "order_update:en_US", "params": ["Ana", " "]}, "fill in all 2 values"),
            ({"template": "made_up:en_US"}, "choose one of this number's approved templates"),
        ]
        for fields, message in refusals:
            response = await post_form(http, f"{url}/template", {"csrf_token": token, **fields})
            assert response.status_code == 400, response.text
            assert message in text_of(response.text)
        assert await _messages(db) == 0

        sent = await post_form(
            http,
            f"{url}/template",
            {"csrf_token": token, "template": "order_update:en_US", "params": ["Ana", "A-17"]},
        )
        assert sent.status_code == 303
        thread = text_of((await http.get(url)).text)
        assert "Template “order_update” (en_US): Ana, A-17" in thread
    await db.rollback()
    [message] = (await db.execute(select(Message))).scalars()
    assert message.type == "template" and message.wamid and message.status != "failed"
