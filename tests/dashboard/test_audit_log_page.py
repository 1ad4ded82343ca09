"""Settings → Audit log over plain HTTP: owners and admins only, newest first, paged."""

from __future__ import annotations

import base64
import re
import uuid
from html import unescape

import pytest

from tests.api_keys import another_client, log_in_as
from tests.dashboard.support import assert_no_inline_code, post_form, text_of
from tests.dashboard.team_support import AUDIT_LOG, TEAM, csrf, invite, user_id
from tests.helpers import create_account, create_key, create_member
from wacrm.audit.service import Actor, record
from wacrm.models import Role

_OLDER = re.compile(r'<a href="(/settings/audit-log\?cursor=[^"]+)">Older</a>')


def _older(html: str) -> str | None:
    found = _OLDER.search(html)
    return unescape(found.group(1)) if found else None


async def _events(db, account_id, count: int) -> list[str]:
    """``count`` events with distinct targets, all at once (equal timestamps are likely)."""
    targets = [uuid.uuid4() for _ in range(count)]
    actor = Actor(user_id=None, label="cli", client_ip=None)
    for target in targets:
        await record(
            db,
            account_id=account_id,
            actor=actor,
            action="api_key.created",
            target_type="api_key",
            target_id=target,
            details={},
        )
    await db.commit()
    return [str(target) for target in targets]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
async def test_managers_see_who_did_what_to_what_and_when_newest_first(client, db, role):
    account = await create_account(db)
    person = await log_in_as(client, db, role, account)
    await create_key(db, account.id, name="nightly sync")
    await invite(client, person, "invitee@example.com", "viewer")
    agent, _ = await create_member(db, account.id, Role.AGENT)
    await post_form(
        client,
        f"{TEAM}/members/{await user_id(db, agent)}/role",
        {"csrf_token": csrf(person), "role": "viewer"},
    )

    page = await client.get(AUDIT_LOG)
    assert page.status_code == 200
    text = text_of(page.text).replace("@ ", "@")
    rows = [
        f"{person.email} from 127.0.0.1 member.role_changed role agent → viewer member {agent}",
        f"{person.email} from 127.0.0.1 member.invited role viewer invitation invitee@example.com",
        "cli api_key.created scopes: ",
    ]
    positions = [text.find(row) for row in rows]
    assert -1 not in positions, text
    assert positions == sorted(positions)  # newest first
    assert "“nightly sync” (wacrm_live_" in text
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", text)
    assert _older(page.text) is None and "Newest</a>" not in page.text
    assert_no_inline_code(page.text)


async def test_pages_of_fifty_walk_every_event_exactly_once(client, db):
    account = await create_account(db)
    await log_in_as(client, db, Role.OWNER, account)
    targets = await _events(db, account.id, 60)

    first = await client.get(AUDIT_LOG)
    older = _older(first.text)
    assert older is not None
    second = await client.get(older)
    assert second.status_code == 200
    assert _older(second.text) is None
    assert f'<a href="{AUDIT_LOG}">Newest</a>' in second.text

    seen = [t for t in targets if t in first.text] + [t for t in targets if t in second.text]
    assert sorted(seen) == sorted(targets)
    assert sum(t in first.text for t in targets) == 50


@pytest.mark.parametrize(
    "cursor",
    [
        "null",
        "%%%",
        base64.urlsafe_b64encode(b"invalid").decode(),
        base64.urlsafe_b64encode(b"x" * 40).decode(),
        "A" * 20_000,
        "%FF%FE",
        "",
    ],
)
async def test_a_bad_cursor_is_a_400_page_never_a_500(client, db, cursor):
    account = await create_account(db)
    await log_in_as(client, db, Role.OWNER, account)
    await _events(db, account.id, 3)
    response = await client.get(f"{AUDIT_LOG}?cursor={cursor}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Invalid cursor" in text_of(response.text)


async def test_another_accounts_cursor_is_refused(client, db, app):
    theirs = await create_account(db, "Their Co")
    await _events(db, theirs.id, 55)
    async with another_client(app) as their_browser:
        await log_in_as(their_browser, db, Role.OWNER, theirs)
        older = _older((await their_browser.get(AUDIT_LOG)).text)
    assert older is not None
    await log_in_as(client, db, Role.OWNER)
    response = await client.get(older)
    assert response.status_code == 400
    assert "Invalid cursor" in text_of(response.text)


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
async def test_agents_and_viewers_get_the_403_page_and_no_link(client, db, role):
    account = await create_account(db)
    await _events(db, account.id, 2)
    await log_in_as(client, db, role, account)
    response = await client.get(AUDIT_LOG)
    assert response.status_code == 403
    assert "Only an owner or admin can do this." in text_of(response.text)
    assert "api_key.created" not in response.text
    assert 'href="/settings/audit-log"' not in (await client.get(TEAM)).text


async def test_without_a_session_the_audit_log_sends_the_browser_to_login(client):
    response = await client.get(AUDIT_LOG)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
