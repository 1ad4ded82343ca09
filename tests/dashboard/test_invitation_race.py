"""One invitation link accepted by several browsers at once (a double-click on Join)."""

from __future__ import annotations

import asyncio

from tests.api_keys import another_client, log_in_as
from tests.dashboard.support import csrf_of, post_form
from tests.dashboard.team_support import audit_actions, invitation_rows, invite, roles
from tests.helpers import create_account
from wacrm.models import Role


async def test_concurrent_accepts_as_new_user_join_once_and_never_fail(client, db, app):
    account = await create_account(db)
    owner = await log_in_as(client, db, Role.OWNER, account)
    link = await invite(client, owner, "twice@example.com", "agent")
    fields = {"name": "Twice", "password": "new-password-1", "password_again": "new-password-1"}
    browsers = [another_client(app) for _ in range(4)]
    opened = [await browser.__aenter__() for browser in browsers]
    try:
        tokens = [csrf_of((await http.get(link)).text) for http in opened]
        answers = await asyncio.gather(
            *(
                post_form(http, link, {**fields, "csrf_token": token})
                for http, token in zip(opened, tokens, strict=True)
            )
        )
    finally:
        for browser in browsers:
            await browser.__aexit__(None, None, None)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [303, 410, 410, 410], statuses
    assert (await roles(db, account.id))["twice@example.com"] == "agent"
    assert (await invitation_rows(db, account.id))[0].accepted_at is not None
    assert (await audit_actions(db, account.id)).count("member.joined") == 1
