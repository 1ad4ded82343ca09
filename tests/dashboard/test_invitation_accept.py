"""Accepting an invitation: as an existing user, bad fields, CSRF, and races with the team."""

from __future__ import annotations

import pytest

from tests.api_keys import another_client, log_in_as
from tests.dashboard.support import client_of_app_with, csrf_of, post_form, text_of
from tests.dashboard.team_support import (
    TEAM,
    audit_actions,
    csrf,
    invitation_rows,
    invite,
    roles,
    snapshot,
)
from tests.helpers import create_account
from wacrm.accounts.service import SESSION_COOKIE, add_member, create_user
from wacrm.models import Role

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_someone_with_a_login_elsewhere_joins_with_their_password(client, db, app):
    home = await create_account(db, "Home Co")
    inviting = await create_account(db, "Inviting Co")
    owner = await log_in_as(client, db, Role.OWNER, inviting)
    link = await invite(client, owner, home.owner_email.upper(), "viewer")
    async with another_client(app) as browser:
        form = await browser.get(link)
        assert "You already log in to wacrm with this email" in text_of(form.text)
        assert 'name="name"' not in form.text
        token = csrf_of(form.text)

        wrong = await post_form(browser, link, {"csrf_token": token, "password": "not-it"})
        assert wrong.status_code == 401
        assert "Invalid email or password." in text_of(wrong.text)
        assert home.owner_email not in await roles(db, inviting.id)
        assert (await invitation_rows(db, inviting.id))[0].accepted_at is None

        joined = await post_form(
            browser, link, {"csrf_token": token, "password": home.owner_password}
        )
        assert joined.status_code == 303, joined.text
        session = (await browser.get("/api/auth/session")).json()["data"]
    assert (session["account_id"], session["role"]) == (str(inviting.id), "viewer")
    assert (await roles(db, inviting.id))[home.owner_email] == "viewer"
    assert (await roles(db, home.id))[home.owner_email] == "owner"  # still theirs
    assert await audit_actions(db, inviting.id) == ["member.invited", "member.joined"]


async def test_password_guessing_on_an_invitation_is_throttled_like_login(settings, db):
    home = await create_account(db, "Home Co")
    inviting = await create_account(db, "Inviting Co")
    # Three attempts a minute: the inviting owner's own login is the first.
    async with client_of_app_with(settings, login_attempts_per_minute=3) as http:
        owner = await log_in_as(http, db, Role.OWNER, inviting)
        link = await invite(http, owner, home.owner_email)
        token = csrf_of((await http.get(link)).text)
        for _ in range(2):
            guess = await post_form(http, link, {"csrf_token": token, "password": "guess"})
            assert guess.status_code == 401
        blocked = await post_form(
            http, link, {"csrf_token": token, "password": home.owner_password}
        )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert "Too many login attempts" in text_of(blocked.text)
    assert home.owner_email not in await roles(db, inviting.id)


BAD_FIELDS = [
    ({"name": ""}, "Your name: must not be empty"),
    ({"name": "   "}, "Your name: must not be empty"),
    ({"name": "x" * 121}, "Your name: must be at most 120 characters"),
    ({"name": "tab\tname"}, "Your name: must not contain control characters"),
    ({"password": "short", "password_again": "short"}, "Password: use 10 to 1024 characters"),
    ({"password": "p" * 1025, "password_again": "p" * 1025}, "Password: use 10 to 1024"),
    ({"password": "nul\x00password", "password_again": "nul\x00password"}, "NUL"),
    ({"password_again": "something-else"}, "Password again: does not match the password"),
    ({"password_again": ""}, "Password again: does not match the password"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS)
async def test_bad_fields_rerender_the_form_and_leave_the_link_usable(
    client, db, app, fields, message
):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "careful@example.com")
    before = await snapshot(db, account.id)
    async with another_client(app) as browser:
        form = await browser.get(link)
        good = {
            "name": "Careful",
            "password": "good-password-1",
            "password_again": "good-password-1",
        }
        body = {**good, **fields, "csrf_token": csrf_of(form.text)}
        refused = await post_form(browser, link, body)
        assert refused.status_code == 400, refused.text
        assert "There is a problem" in text_of(refused.text)
        assert message in text_of(refused.text)
        assert SESSION_COOKIE not in refused.cookies
        assert await snapshot(db, account.id) == before

        retry = await post_form(browser, link, {**good, "csrf_token": csrf_of(refused.text)})
        assert retry.status_code == 303
    assert (await roles(db, account.id))["careful@example.com"] == "agent"


@pytest.mark.parametrize(
    "raw",
    [
        "name=%FF%FE&password=good-password-1&password_again=good-password-1",
        "name=ok&password=%ED%A0%80good-password&password_again=%ED%A0%80good-password",
        "name=" + "n" * 30_000 + "&password=good-password-1&password_again=good-password-1",
        "name=ok&password=" + "p" * 30_000 + "&password_again=x",
    ],
)
async def test_non_utf8_or_huge_fields_are_form_errors(client, db, app, raw):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "bytes@example.com")
    before = await snapshot(db, account.id)
    async with another_client(app) as browser:
        token = csrf_of((await browser.get(link)).text)
        response = await browser.post(
            link, content=f"{raw}&csrf_token={token}", headers=FORM_HEADERS
        )
    assert response.status_code == 400, response.text
    text = text_of(response.text)
    assert "is not valid text (UTF-8)" in text or "is far too long" in text
    assert "p" * 100 not in response.text  # a refused password is never echoed
    assert await snapshot(db, account.id) == before


@pytest.mark.parametrize("token", [None, "", "x" * 43, "y" * 5000])
async def test_accepting_without_this_browsers_form_token_is_403(client, db, app, token):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "csrf@example.com")
    before = await snapshot(db, account.id)
    fields = {"name": "X", "password": "good-password-1", "password_again": "good-password-1"}
    async with another_client(app) as browser:
        if token is not None:
            fields["csrf_token"] = token
        await browser.get(link)  # the browser has its own token; the post carries another
        response = await post_form(browser, link, fields)
    assert response.status_code == 403
    assert "This form expired" in text_of(response.text)
    assert SESSION_COOKIE not in response.cookies
    assert await snapshot(db, account.id) == before


async def test_joining_when_already_a_member_is_refused_and_the_link_stays_unused(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "twice@example.com", "admin")
    user, _ = await create_user(db, "twice@example.com", "twice-password-1")
    await add_member(db, account.id, user.id, Role.VIEWER)
    await db.commit()
    before = await snapshot(db, account.id)
    async with another_client(app) as browser:
        token = csrf_of((await browser.get(link)).text)
        response = await post_form(
            browser, link, {"csrf_token": token, "password": "twice-password-1"}
        )
    assert response.status_code == 409
    assert "already a member of the account" in text_of(response.text)
    assert await snapshot(db, account.id) == before
    assert (await roles(db, account.id))["twice@example.com"] == "viewer"


async def test_a_login_created_after_the_link_was_opened_must_log_in_instead(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "racer@example.com")
    async with another_client(app) as browser:
        form = await browser.get(link)
        assert 'name="name"' in form.text
        await create_user(db, "racer@example.com", "racer-password-1")
        await db.commit()
        before = await snapshot(db, account.id)
        fields = {"name": "R", "password": "other-password-1", "password_again": "other-password-1"}
        response = await post_form(browser, link, {**fields, "csrf_token": csrf_of(form.text)})
    assert response.status_code == 401  # the password is now checked against that login
    assert "You already log in to wacrm with this email" in text_of(response.text)
    assert await snapshot(db, account.id) == before


async def test_revoking_twice_or_a_used_invitation_is_refused_with_a_message(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    await invite(client, owner, "gone@example.com")
    [row] = await invitation_rows(db, account.id)
    url = f"{TEAM}/invitations/{row.id}/revoke"
    assert (await post_form(client, url, {"csrf_token": csrf(owner)})).status_code == 303
    page = text_of((await client.get(TEAM)).text)
    assert "Revoked the invitation for gone@example.com." in page
    assert "No pending invitations." in page

    before = await snapshot(db, account.id)
    twice = await post_form(client, url, {"csrf_token": csrf(owner)})
    assert twice.status_code == 409
    assert "This invitation was already used or revoked." in text_of(twice.text)
    assert await snapshot(db, account.id) == before


async def test_another_accounts_invitation_is_not_found_here(client, db, app):
    theirs = await create_account(db, "Their Co")
    async with another_client(app) as their_browser:
        their_owner = await log_in_as(their_browser, db, Role.OWNER, theirs)
        await invite(their_browser, their_owner, "theirs@example.com")
    [invitation_id] = [row.id for row in await invitation_rows(db, theirs.id)]
    me = await log_in_as(client, db, Role.OWNER)
    before = await snapshot(db, theirs.id)
    response = await post_form(
        client, f"{TEAM}/invitations/{invitation_id}/revoke", {"csrf_token": csrf(me)}
    )
    assert response.status_code == 404
    assert "theirs@example.com" not in response.text
    assert await snapshot(db, theirs.id) == before
