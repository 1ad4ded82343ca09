"""Invitation links over plain HTTP: inviting, the shown-once link, joining, and every refusal."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.api_keys import another_client, dump_database, log_in_as
from tests.dashboard.support import csrf_of, post_form, text_of
from tests.dashboard.team_support import (
    TEAM,
    accept_as_new,
    audit_actions,
    csrf,
    invitation_rows,
    invite,
    roles,
    snapshot,
)
from tests.helpers import create_account, create_member
from wacrm.accounts.service import SESSION_COOKIE
from wacrm.dashboard.site import HOME_PATH
from wacrm.kit.clock import utcnow
from wacrm.models import Invitation, Role

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


async def _expire(db, invitation_id, when=None) -> None:
    await db.rollback()
    moment = when or utcnow() - timedelta(seconds=1)
    await db.execute(
        update(Invitation).where(Invitation.id == invitation_id).values(expires_at=moment)
    )
    await db.commit()


async def test_invite_shows_the_link_once_and_stores_only_its_hash(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    response = await post_form(
        client,
        f"{TEAM}/invitations",
        {"csrf_token": csrf(owner), "email": "  New.Person@Example.COM ", "role": "viewer"},
    )
    assert response.status_code == 201, text_of(response.text)
    assert "it will not be shown again" in text_of(response.text)
    assert f'data-replace-url="{TEAM}"' in response.text
    [link] = [m for m in response.text.split('"') if "/invitations/" in m and "http" in m]
    token = link.rsplit("/", 1)[1]
    assert link == f"http://127.0.0.1:8000/invitations/{token}"
    assert response.text.count(token) == 1

    [row] = await invitation_rows(db, account.id)
    assert (row.email, row.role) == ("new.person@example.com", "viewer")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert abs(row.expires_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    assert token not in await dump_database(db)
    assert await audit_actions(db, account.id) == ["member.invited"]

    again = await client.get(TEAM)
    assert token not in again.text
    assert "new.person@ example.com Viewer" in text_of(again.text)


async def test_the_expiry_is_a_setting(settings, db, app):
    from tests.dashboard.support import client_of_app_with

    account = await create_account(db)
    async with client_of_app_with(settings, invitation_ttl_days=2) as http:
        owner = await log_in_as(http, db, Role.OWNER, account)
        await invite(http, owner, "two-days@example.com")
    [row] = await invitation_rows(db, account.id)
    assert abs(row.expires_at - (utcnow() + timedelta(days=2))) < timedelta(minutes=1)


async def test_an_admin_may_invite_an_admin(client, db):
    account = await create_account(db)
    admin = await log_in_as(client, db, Role.ADMIN, account)
    await invite(client, admin, "second-admin@example.com", "admin")
    assert [(i.email, i.role) for i in await invitation_rows(db, account.id)] == [
        ("second-admin@example.com", "admin")
    ]


BAD_INVITES = [
    ({"email": "no-at-sign.example.com"}, "Email: enter an address like name@example.com"),
    ({"email": ""}, "Email: enter an address like"),
    ({"email": "a@b"}, "Email: enter an address like"),
    ({"email": "a@@example.com"}, "Email: enter an address like"),
    ({"email": "a@example..com"}, "Email: enter an address like"),
    ({"email": "two words@example.com"}, "Email: enter an address like"),
    ({"email": "<a@example.com>"}, "Email: enter an address like"),
    ({"email": "a@example.com, b@example.com"}, "Email: enter an address like"),
    ({"email": "nul\x00@example.com"}, "Email: enter an address like"),
    ({"email": "x" * 65 + "@example.com"}, "Email: enter an address like"),
    ({"email": "\u202emoc.elpmaxe@example.com"}, "Email: enter an address like"),
    ({"email": "ad\u200bmin@example.com"}, "Email: enter an address like"),
    ({"email": "a@" + "b" * 320 + ".com"}, "Email: enter an address like"),
    ({"role": "owner"}, "Role: ownership is not given this way"),
    ({"role": "Owner"}, "Role: ownership is not given this way"),
    ({"role": "root"}, "Role: choose admin, agent or viewer"),
    ({"role": ""}, "Role: choose admin, agent or viewer"),
    ({"email": "bad", "role": "owner"}, "Role: ownership is not given this way"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_INVITES)
async def test_bad_invitations_rerender_the_form_and_create_nothing(client, db, fields, message):
    account = await create_account(db)
    admin = await log_in_as(client, db, Role.ADMIN, account)
    before = await snapshot(db, account.id)
    body = {"csrf_token": csrf(admin), "email": "fine@example.com", "role": "agent", **fields}
    response = await post_form(client, f"{TEAM}/invitations", body)
    assert response.status_code == 400, response.text
    text = text_of(response.text)
    assert "There is a problem" in text
    assert message in text, text
    assert "/invitations/" not in response.text.replace('action="/settings/team/invitations"', "")
    assert await snapshot(db, account.id) == before


@pytest.mark.parametrize(
    "raw",
    [
        "email=%FF%FE%40example.com&role=agent",
        "email=%ED%A0%80%40example.com&role=agent",
        "email=" + "x" * 30_000 + "%40example.com&role=agent",
        "email=a%40example.com&role=%C3",
    ],
)
async def test_non_utf8_or_huge_invite_fields_are_form_errors(client, db, raw):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    before = await snapshot(db, account.id)
    response = await client.post(
        f"{TEAM}/invitations", content=f"{raw}&csrf_token={csrf(owner)}", headers=FORM_HEADERS
    )
    assert response.status_code == 400, response.text
    text = text_of(response.text)
    assert "is not valid text (UTF-8)" in text or "is far too long" in text
    assert await snapshot(db, account.id) == before


async def test_inviting_an_existing_member_or_a_pending_email_is_a_conflict(client, db):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    agent, _ = await create_member(db, account.id, Role.AGENT)
    await invite(client, owner, "waiting@example.com")
    before = await snapshot(db, account.id)
    for email, message in (
        (agent.upper(), f"{agent} is already a member of this account."),
        (account.owner_email, "is already a member of this account."),
        ("Waiting@Example.com", "waiting@example.com already has a pending invitation."),
    ):
        response = await post_form(
            client,
            f"{TEAM}/invitations",
            {"csrf_token": csrf(owner), "email": email, "role": "viewer"},
        )
        assert response.status_code == 409, response.text
        assert message in text_of(response.text)
        assert f'value="{email}"' in response.text  # the input is kept
    assert await snapshot(db, account.id) == before


async def test_a_new_person_joins_with_a_name_and_password_and_lands_logged_in(client, db, app):
    account = await create_account(db, "Joinable Co")
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "newbie@example.com", "agent")
    async with another_client(app) as newcomer:
        form = await newcomer.get(link)
        assert form.status_code == 200
        text = text_of(form.text)
        assert "Join Joinable Co" in text and "as agent" in text and "newbie@example.com" in text
        assert form.headers["cache-control"] == "no-store"
        joined = await accept_as_new(newcomer, link, name="  Nina Newbie ")
        assert (joined.status_code, joined.headers["location"]) == (303, HOME_PATH)
        assert newcomer.cookies.get(SESSION_COOKIE)
        landed = await newcomer.get(HOME_PATH)
        assert "Welcome to Joinable Co. You joined as agent." in text_of(landed.text)
        session = (await newcomer.get("/api/auth/session")).json()["data"]
        assert (session["email"], session["role"]) == ("newbie@example.com", "agent")
        assert session["account_id"] == str(account.id)

        replay = await newcomer.get(link)
        assert replay.status_code == 410
        assert "already been used" in text_of(replay.text)
    assert (await roles(db, account.id))["newbie@example.com"] == "agent"
    [row] = await invitation_rows(db, account.id)
    assert row.accepted_at is not None
    assert await audit_actions(db, account.id) == ["member.invited", "member.joined"]
    assert "Nina Newbie" in text_of((await client.get(TEAM)).text)


async def test_replaying_a_used_link_changes_nothing(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "once@example.com")
    async with another_client(app) as first, another_client(app) as second:
        form = await second.get(link)  # opened before the first person used it
        assert (await accept_as_new(first, link)).status_code == 303
        before = await snapshot(db, account.id)
        fields = {"name": "Mallory", "password": "other-password-1"}
        replay = await post_form(
            second,
            link,
            {**fields, "password_again": fields["password"], "csrf_token": csrf_of(form.text)},
        )
    assert replay.status_code == 410
    assert "already been used" in text_of(replay.text)
    assert SESSION_COOKIE not in replay.cookies
    assert await snapshot(db, account.id) == before


async def test_an_expired_link_gets_a_friendly_page_and_nothing_happens(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "late@example.com")
    async with another_client(app) as newcomer:
        form = await newcomer.get(link)
        [row] = await invitation_rows(db, account.id)
        await _expire(db, row.id)
        before = await snapshot(db, account.id)
        page = await newcomer.get(link)
        fields = {
            "name": "Late",
            "password": "late-password-1",
            "password_again": "late-password-1",
        }
        posted = await post_form(newcomer, link, {**fields, "csrf_token": csrf_of(form.text)})
    for response in (page, posted):
        assert response.status_code == 410
        assert "This invitation has expired." in text_of(response.text)
    assert await snapshot(db, account.id) == before
    assert "late@example.com" not in text_of((await client.get(TEAM)).text)  # not pending


async def test_a_revoked_link_from_another_account_gets_a_friendly_page(client, db, app):
    theirs = await create_account(db, "Their Co")
    mine = await create_account(db, "My Co")
    async with another_client(app) as their_admin_browser:
        their_admin = await log_in_as(their_admin_browser, db, Role.ADMIN, theirs)
        link = await invite(their_admin_browser, their_admin, "someone@example.com", "admin")
        form = await client.get(link)  # opened while still valid
        [row] = await invitation_rows(db, theirs.id)
        revoked = await post_form(
            their_admin_browser,
            f"{TEAM}/invitations/{row.id}/revoke",
            {"csrf_token": csrf(their_admin)},
        )
        assert (revoked.status_code, revoked.headers["location"]) == (303, TEAM)
        assert (await invitation_rows(db, theirs.id))[0].revoked_at is not None

    me = await log_in_as(client, db, Role.OWNER, mine)
    before = (await snapshot(db, theirs.id), await snapshot(db, mine.id))
    page = await client.get(link)
    fields = {"name": "Me", "password": "my-password-12", "password_again": "my-password-12"}
    posted = await post_form(client, link, {**fields, "csrf_token": csrf_of(form.text)})
    for response in (page, posted):
        assert response.status_code == 410
        assert "This invitation was withdrawn." in text_of(response.text)
    assert (await snapshot(db, theirs.id), await snapshot(db, mine.id)) == before
    assert (await client.get("/api/auth/session")).json()["data"]["email"] == me.email
    assert await audit_actions(db, theirs.id) == ["member.invited", "invitation.revoked"]


NOT_VALID = "This invitation link is not valid."


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/invitations/" + "A" * 43, NOT_VALID),
        ("/invitations/short", NOT_VALID),
        ("/invitations/" + "x" * 5000, NOT_VALID),
        ("/invitations/%FF%FE", NOT_VALID),
        ("/invitations/%00", NOT_VALID),
        ("/invitations/..%2F..%2Fsettings", "Page not found"),  # names no route at all
    ],
)
async def test_unknown_or_malformed_links_get_a_friendly_404(client, path, message):
    for response in (
        await client.get(path),
        await client.post(path, content="name=x", headers=FORM_HEADERS),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert message in text_of(response.text)
