"""Settings → Team over plain HTTP: the roster, roles, removal, ownership, and every refusal."""

from __future__ import annotations

import uuid

import pytest

from tests.api_keys import another_client, log_in_as
from tests.dashboard.support import assert_no_inline_code, post_form, text_of
from tests.dashboard.team_support import (
    TEAM,
    audit_actions,
    csrf,
    invite,
    roles,
    sessions_of,
    snapshot,
    user_id,
)
from tests.helpers import create_account, create_member, login
from wacrm.accounts.service import add_member
from wacrm.models import Role

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
async def test_agents_and_viewers_see_the_roster_without_controls(client, db, role):
    owner = await create_account(db, "Roster Co")
    await invite(client, await log_in_as(client, db, Role.OWNER, owner), "pending@example.com")
    person = await log_in_as(client, db, role, owner)

    page = await client.get(TEAM)
    assert page.status_code == 200
    text = text_of(page.text)
    assert f"{owner.owner_email} Owner" in text.replace("@ ", "@")
    assert f"{person.email} {role.value.capitalize()}" in text.replace("@ ", "@")
    assert "pending@ example.com" in text
    for control in ("Change role", "Remove", "Make owner", "Revoke", "Create invitation link"):
        assert control not in text, control
    assert 'action="/settings/team' not in page.text
    assert "Only an owner or admin can invite people" in text
    assert "Audit log" not in text  # the link is for owners and admins only
    assert_no_inline_code(page.text)


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
async def test_forged_posts_from_agents_and_viewers_get_403_and_change_nothing(client, db, role):
    owner = await create_account(db)
    boss = await log_in_as(client, db, Role.OWNER, owner)
    await invite(client, boss, "waiting@example.com")
    colleague, _ = await create_member(db, owner.id, Role.AGENT)
    target = await user_id(db, colleague)
    [invitation_id] = [i[0] for i in (await snapshot(db, owner.id)).invitations]
    person = await log_in_as(client, db, role, owner)
    before = await snapshot(db, owner.id)

    forged = [
        (f"{TEAM}/invitations", {"email": "forged@example.com", "role": "admin"}),
        (f"{TEAM}/invitations/{invitation_id}/revoke", {}),
        (f"{TEAM}/members/{target}/role", {"role": "admin"}),
        (f"{TEAM}/members/{await user_id(db, person.email)}/role", {"role": "admin"}),
        (f"{TEAM}/members/{target}/remove", {}),
        (f"{TEAM}/members/{target}/transfer-ownership", {}),
    ]
    for url, fields in forged:
        response = await post_form(client, url, {**fields, "csrf_token": csrf(person)})
        assert response.status_code == 403, (url, response.text)
        assert "Only an owner or admin can do this." in text_of(response.text)
    for url in (f"{TEAM}/members/{target}/remove", f"{TEAM}/members/{target}/transfer-ownership"):
        assert (await client.get(url)).status_code == 403
    assert await snapshot(db, owner.id) == before


async def test_an_admins_forged_ownership_transfer_is_403_and_changes_nothing(client, db):
    owner = await create_account(db)
    agent, _ = await create_member(db, owner.id, Role.AGENT)
    admin = await log_in_as(client, db, Role.ADMIN, owner)
    before = await snapshot(db, owner.id)
    for target in (await user_id(db, agent), await user_id(db, admin.email)):
        url = f"{TEAM}/members/{target}/transfer-ownership"
        assert (await client.get(url)).status_code == 403
        response = await post_form(client, url, {"csrf_token": csrf(admin)})
        assert response.status_code == 403
        assert "Only the owner can transfer ownership." in text_of(response.text)
    assert "Make owner" not in text_of((await client.get(TEAM)).text)
    assert await snapshot(db, owner.id) == before


async def test_an_admin_cannot_touch_the_owner(client, db):
    owner = await create_account(db)
    admin = await log_in_as(client, db, Role.ADMIN, owner)
    owner_id = await user_id(db, owner.owner_email)
    before = await snapshot(db, owner.id)
    attempts = [
        (f"{TEAM}/members/{owner_id}/role", {"role": "viewer"}),
        (f"{TEAM}/members/{owner_id}/remove", {}),
    ]
    for url, fields in attempts:
        response = await post_form(client, url, {**fields, "csrf_token": csrf(admin)})
        assert response.status_code == 403, response.text
        assert "Only the owner can change the owner's membership." in text_of(response.text)
    assert await snapshot(db, owner.id) == before


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
async def test_owner_or_admin_changes_a_role_and_the_roster_and_audit_log_show_it(client, db, role):
    account = await create_account(db)
    person = await log_in_as(client, db, role, account)
    agent, _ = await create_member(db, account.id, Role.AGENT)
    response = await post_form(
        client,
        f"{TEAM}/members/{await user_id(db, agent)}/role",
        {"csrf_token": csrf(person), "role": "admin"},
    )
    assert (response.status_code, response.headers["location"]) == (303, TEAM)
    assert (await roles(db, account.id))[agent] == "admin"
    page = text_of((await client.get(TEAM)).text)
    assert f"{agent} is now an admin." in page
    assert f"{agent.replace('@', '@ ')} Admin" in page
    assert (await audit_actions(db, account.id))[-1] == "member.role_changed"


async def test_an_admin_may_change_another_admins_role_and_their_own(client, db):
    account = await create_account(db)
    admin = await log_in_as(client, db, Role.ADMIN, account)
    other, _ = await create_member(db, account.id, Role.ADMIN)
    for email in (other, admin.email):
        response = await post_form(
            client,
            f"{TEAM}/members/{await user_id(db, email)}/role",
            {"csrf_token": csrf(admin), "role": "agent"},
        )
        assert response.status_code == 303
    assert await roles(db, account.id) == {
        account.owner_email: "owner",
        other: "agent",
        admin.email: "agent",
    }
    # Their own session now carries the new role: managing is over for them.
    refused = await post_form(
        client, f"{TEAM}/members/{await user_id(db, other)}/role", {"csrf_token": csrf(admin)}
    )
    assert refused.status_code == 403


BAD_ROLES = [
    ("owner", "ownership is not given this way: the owner transfers it"),
    ("OWNER", "ownership is not given this way"),
    (" owner ", "ownership is not given this way"),
    ("superuser", "choose admin, agent or viewer"),
    ("", "choose admin, agent or viewer"),
    ("Admin", "choose admin, agent or viewer"),
    ("x" * 30_000, "choose admin, agent or viewer"),
    ("%FF%FE", "choose admin, agent or viewer"),
    ("admin%00", "choose admin, agent or viewer"),
]


@pytest.mark.parametrize(("role", "message"), BAD_ROLES)
async def test_a_bad_role_on_the_role_form_rerenders_with_the_error_and_changes_nothing(
    client, db, role, message
):
    account = await create_account(db)
    person = await log_in_as(client, db, Role.OWNER, account)
    agent, _ = await create_member(db, account.id, Role.AGENT)
    before = await snapshot(db, account.id)
    body = f"role={role}&csrf_token={csrf(person)}"
    response = await client.post(
        f"{TEAM}/members/{await user_id(db, agent)}/role", content=body, headers=FORM_HEADERS
    )
    assert response.status_code == 400, response.text
    text = text_of(response.text)
    assert "That change was not made" in text
    assert message in text
    assert await snapshot(db, account.id) == before


async def test_the_owners_own_role_cannot_change_nobody_demotes_the_last_owner(client, db):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    owner_id = await user_id(db, owner.email)
    before = await snapshot(db, account.id)
    for url, fields in (
        (f"{TEAM}/members/{owner_id}/role", {"role": "admin"}),
        (f"{TEAM}/members/{owner_id}/remove", {}),
    ):
        response = await post_form(client, url, {**fields, "csrf_token": csrf(owner)})
        assert response.status_code == 409, response.text
        assert "transfer ownership to another member first" in text_of(response.text)
    assert await snapshot(db, account.id) == before


async def test_members_of_another_account_and_bad_ids_are_not_found(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    other = await create_account(db, "Other Co")
    stranger = await user_id(db, other.owner_email)
    before = await snapshot(db, other.id)
    for path in (
        f"{stranger}/role",
        f"{stranger}/remove",
        f"{stranger}/transfer-ownership",
        f"{uuid.uuid4()}/remove",
        "not-a-uuid/role",
    ):
        fields = {"csrf_token": csrf(person), "role": "viewer"}
        response = await post_form(client, f"{TEAM}/members/{path}", fields)
        assert response.status_code == 404, (path, response.text)
        assert other.owner_email not in response.text
    assert (await client.get(f"{TEAM}/members/{stranger}/remove")).status_code == 404
    assert await snapshot(db, other.id) == before


async def test_removing_a_member_ends_their_sessions_in_that_account_at_once(client, db, app):
    account = await create_account(db)
    other_account = await create_account(db, "Second Co")
    admin = await log_in_as(client, db, Role.ADMIN, account)
    agent, password = await create_member(db, account.id, Role.AGENT)
    agent_id = await user_id(db, agent)
    await add_member(db, other_account.id, agent_id, Role.VIEWER)
    await db.commit()
    async with another_client(app) as agents_browser, another_client(app) as elsewhere:
        await login(agents_browser, agent, password)
        await elsewhere.post(
            "/api/auth/login",
            json={"email": agent, "password": password, "account_id": str(other_account.id)},
        )
        assert (await agents_browser.get(TEAM)).status_code == 200
        confirm = await client.get(f"{TEAM}/members/{agent_id}/remove")
        assert f"Remove {agent}?" in text_of(confirm.text)
        assert agent in (await roles(db, account.id))  # looking changes nothing

        done = await post_form(
            client, f"{TEAM}/members/{agent_id}/remove", {"csrf_token": csrf(admin)}
        )
        assert (done.status_code, done.headers["location"]) == (303, TEAM)
        assert agent not in await roles(db, account.id)
        assert await sessions_of(db, agent) == 1  # the session in the other account lives on
        assert (await agents_browser.get(TEAM)).status_code == 303  # back to login
        assert (await elsewhere.get(TEAM)).status_code == 200
    page = text_of((await client.get(TEAM)).text)
    assert f"Removed {agent} from the account." in page
    assert (await audit_actions(db, account.id))[-1] == "member.removed"


async def test_transfer_ownership_leaves_exactly_one_owner_and_the_old_owner_an_admin(client, db):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    viewer, _ = await create_member(db, account.id, Role.VIEWER)
    viewer_id = await user_id(db, viewer)
    confirm = await client.get(f"{TEAM}/members/{viewer_id}/transfer-ownership")
    assert f"Make {viewer} the owner?" in text_of(confirm.text)

    done = await post_form(
        client, f"{TEAM}/members/{viewer_id}/transfer-ownership", {"csrf_token": csrf(owner)}
    )
    assert (done.status_code, done.headers["location"]) == (303, TEAM)
    assert await roles(db, account.id) == {owner.email: "admin", viewer: "owner"}
    assert (await audit_actions(db, account.id))[-1] == "account.ownership_transferred"
    page = text_of((await client.get(TEAM)).text)
    assert f"{viewer} is now the owner. You are an admin." in page
    assert "Make owner" not in page

    again = await post_form(
        client, f"{TEAM}/members/{viewer_id}/transfer-ownership", {"csrf_token": csrf(owner)}
    )
    assert again.status_code == 403
    assert await roles(db, account.id) == {owner.email: "admin", viewer: "owner"}


async def test_transfer_to_yourself_is_refused(client, db):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    before = await snapshot(db, account.id)
    response = await post_form(
        client,
        f"{TEAM}/members/{await user_id(db, owner.email)}/transfer-ownership",
        {"csrf_token": csrf(owner)},
    )
    assert response.status_code == 409
    assert "You are already the owner." in text_of(response.text)
    assert await snapshot(db, account.id) == before


@pytest.mark.parametrize("token", [None, "", "wrong-token", "x" * 5000])
async def test_team_forms_without_the_right_csrf_token_are_403(client, db, token):
    account = await create_account(db)
    await log_in_as(client, db, Role.OWNER, account)
    agent, _ = await create_member(db, account.id, Role.AGENT)
    agent_id = await user_id(db, agent)
    before = await snapshot(db, account.id)
    fields = {} if token is None else {"csrf_token": token}
    for url, extra in (
        (f"{TEAM}/invitations", {"email": "x@example.com", "role": "agent"}),
        (f"{TEAM}/members/{agent_id}/role", {"role": "admin"}),
        (f"{TEAM}/members/{agent_id}/remove", {}),
        (f"{TEAM}/members/{agent_id}/transfer-ownership", {}),
    ):
        response = await post_form(client, url, {**extra, **fields})
        assert response.status_code == 403
        assert "did not come from this dashboard" in text_of(response.text)
    assert await snapshot(db, account.id) == before
