"""Two ownership transfers at once, from two sessions of the same owner: one owner after."""

from __future__ import annotations

import asyncio

from tests.api_keys import another_client
from tests.dashboard.support import post_form
from tests.dashboard.team_support import TEAM, audit_actions, roles, user_id
from tests.helpers import create_account, create_member, login
from wacrm.models import Role


async def test_concurrent_transfers_leave_exactly_one_owner(db, app):
    account = await create_account(db)
    first, _ = await create_member(db, account.id, Role.AGENT)
    second, _ = await create_member(db, account.id, Role.VIEWER)
    targets = [await user_id(db, first), await user_id(db, second)]
    async with another_client(app) as one, another_client(app) as two:
        tokens = [
            (await login(browser, account.owner_email, account.owner_password))["X-CSRF-Token"]
            for browser in (one, two)
        ]
        answers = await asyncio.gather(
            *(
                post_form(browser, f"{TEAM}/members/{target}/transfer-ownership", {"csrf_token": t})
                for browser, target, t in zip((one, two), targets, tokens, strict=True)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] == 303 and statuses[1] in (403, 409), statuses
    members = await roles(db, account.id)
    assert sorted(members.values()) == ["admin", "agent", "owner"] or sorted(members.values()) == [
        "admin",
        "owner",
        "viewer",
    ]
    assert list(members.values()).count("owner") == 1
    assert members[account.owner_email] == "admin"
    assert (await audit_actions(db, account.id)).count("account.ownership_transferred") == 1
