"""The sandbox as Meta's stand-in: validation, signed status and message webhooks, templates,
lifecycle, and the ``wacrm sandbox`` commands. Webhooks and the CLI go over real loopback
HTTP; the validation tables use the sandbox mounted in-process, as ``wacrm serve`` mounts it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.whatsapp import CUSTOMER, PHONE_NUMBER_ID, in_process, make_settings, running
from wacrm.whatsapp.client import MetaError
from wacrm.whatsapp.payloads import template_message, text_message
from wacrm.whatsapp.sandbox import callbacks
from wacrm.whatsapp.sandbox.callbacks import Billing
from wacrm.whatsapp.sandbox.cli import sandbox_app
from wacrm.whatsapp.sandbox.service import Sandbox
from wacrm.whatsapp.sandbox.state import WINDOW_SECONDS, SandboxState


def _meta_error(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code", "fbtrace_id"}
    assert error["type"] == "OAuthException"
    return dict(error)


# --- status webhooks ---------------------------------------------------------------------------


async def test_statuses_arrive_sent_delivered_read_signed_in_metas_format(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        result = await world.client.send(
            world.creds(),
            template_message(CUSTOMER, "order_update", "en_US", params=["Ana", "#42"]),
        )
        posts = await world.receiver.wait_for(3)
    assert all(post.signed_by(world.settings.sandbox_app_secret) for post in posts)
    assert all(post.headers["content-type"] == "application/json" for post in posts)
    statuses = [post.statuses[0] for post in posts]
    assert [status["status"] for status in statuses] == ["sent", "delivered", "read"]
    for post, status in zip(posts, statuses, strict=True):
        body = post.json
        assert body["object"] == "whatsapp_business_account"
        change = body["entry"][0]["changes"][0]
        assert change["field"] == "messages"
        assert change["value"]["messaging_product"] == "whatsapp"
        assert change["value"]["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
        assert status["id"] == result.wamid
        assert status["recipient_id"] == "14155550123"
        assert isinstance(status["timestamp"], str) and status["timestamp"].isdigit()
    sent, _, read = statuses
    assert sent["conversation"]["origin"]["type"] == "utility"
    assert sent["pricing"] == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "utility",
    }
    assert "pricing" not in read and "conversation" not in read


async def test_a_wrong_secret_does_not_verify(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        await world.client.send(world.creds(), template_message(CUSTOMER, "hello_world", "en_US"))
        posts = await world.receiver.wait_for(1)
    assert not posts[0].signed_by("some-other-secret")


async def test_free_form_replies_are_priced_as_service(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        await world.customer_writes()
        await world.client.send(world.creds(), text_message(CUSTOMER, "Hi"))
        posts = await world.receiver.wait_for(1 + 3)
    sent = posts[1].statuses[0]
    assert sent["status"] == "sent"
    assert sent["pricing"]["category"] == "service" and sent["pricing"]["billable"] is False


async def test_duplicate_statuses_post_each_twice(tmp_path: Path) -> None:
    async with running(tmp_path, sandbox_duplicate_statuses=True) as world:
        await world.client.send(world.creds(), template_message(CUSTOMER, "hello_world", "en_US"))
        posts = await world.receiver.wait_for(6)
        await asyncio.sleep(0.05)
    assert len(world.receiver.posts) == 6
    order = [post.statuses[0]["status"] for post in posts]
    assert order == ["sent", "sent", "delivered", "delivered", "read", "read"]
    assert posts[0].body == posts[1].body


async def test_reordered_statuses_post_read_first(tmp_path: Path) -> None:
    async with running(tmp_path, sandbox_reorder_statuses=True) as world:
        await world.client.send(world.creds(), template_message(CUSTOMER, "hello_world", "en_US"))
        posts = await world.receiver.wait_for(3)
    statuses = [post.statuses[0] for post in posts]
    assert [status["status"] for status in statuses] == ["read", "delivered", "sent"]
    stamps = [int(status["timestamp"]) for status in statuses]
    assert stamps == sorted(stamps, reverse=True)  # the real sequence is still sent first


async def test_a_failed_webhook_post_is_tried_again_then_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callbacks, "RETRY_DELAYS_SECONDS", (0.01, 0.01, 0.01))
    async with running(tmp_path, receiver_status=500) as world:
        result = await world.client.send(
            world.creds(), template_message(CUSTOMER, "hello_world", "en_US")
        )
        posts = await world.receiver.wait_for(3 * 4)
        await asyncio.sleep(0.2)
    assert result.wamid
    statuses = [post.statuses[0]["status"] for post in posts]
    assert statuses == ["sent"] * 4 + ["delivered"] * 4 + ["read"] * 4  # then given up
    assert "answered 500" in caplog.text


async def test_a_status_the_receiver_missed_is_posted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callbacks, "RETRY_DELAYS_SECONDS", (0.3,))
    async with running(tmp_path, receiver_status=503) as world:
        await world.client.send(world.creds(), template_message(CUSTOMER, "hello_world", "en_US"))
        await world.receiver.wait_for(1)
        world.receiver.status = 200  # back up before Meta tries again
        posts = await world.receiver.wait_for(4)
        await asyncio.sleep(0.1)
    statuses = [post.statuses[0]["status"] for post in world.receiver.posts]
    assert statuses == ["sent", "sent", "delivered", "read"]
    assert posts[0].body == posts[1].body  # the same webhook, not a new one


async def test_pending_status_callbacks_are_cancelled_on_close(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, sandbox_status_delay_seconds=60, sandbox_webhook_url="http://127.0.0.1:9/x"
    )
    sandbox = Sandbox(settings)
    sandbox.webhooks.schedule_statuses(
        PHONE_NUMBER_ID, "wamid.X", "14155550123", Billing("utility")
    )
    assert sandbox.webhooks.pending == 1
    started = time.monotonic()
    await sandbox.aclose()
    assert sandbox.webhooks.pending == 0
    assert time.monotonic() - started < 1
    sandbox.webhooks.schedule_statuses(
        PHONE_NUMBER_ID, "wamid.Y", "14155550123", Billing("utility")
    )
    assert sandbox.webhooks.pending == 0  # closed: nothing new starts


# --- inbound ----------------------------------------------------------------------------------


async def test_inbound_posts_a_signed_meta_message_webhook(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        answer = await world.customer_writes("Hi! Is the planter in stock?", name="Ana Souza")
        posts = await world.receiver.wait_for(1)
    assert answer["webhook_status"] == 200
    assert answer["wamid"].startswith("wamid.")
    post = posts[0]
    assert post.signed_by(world.settings.sandbox_app_secret)
    value = post.json["entry"][0]["changes"][0]["value"]
    assert post.json["object"] == "whatsapp_business_account"
    assert value["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
    assert value["contacts"] == [{"profile": {"name": "Ana Souza"}, "wa_id": "14155550123"}]
    message = value["messages"][0]
    assert message["from"] == "14155550123"
    assert message["id"] == answer["wamid"]
    assert message["type"] == "text"
    assert message["text"] == {"body": "Hi! Is the planter in stock?"}
    assert message["timestamp"].isdigit()
    assert abs(int(message["timestamp"]) - time.time()) < 5


async def test_inbound_other_types_and_replies(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        image = await world.customer_writes(
            text=None, type="image", link="https://example.com/p.jpg", caption="This one"
        )
        location = await world.customer_writes(
            text=None, type="location", latitude=38.7223, longitude=-9.1393
        )
        reply = await world.customer_writes("Yes", reply_to="wamid.BUSINESS1")
        posts = await world.receiver.wait_for(3)
    messages = [post.json["entry"][0]["changes"][0]["value"]["messages"][0] for post in posts]
    assert [m["id"] for m in messages] == [image["wamid"], location["wamid"], reply["wamid"]]
    assert messages[0]["image"]["caption"] == "This one"
    assert messages[0]["image"]["mime_type"] == "image/jpeg"
    assert messages[1]["location"] == {"latitude": 38.7223, "longitude": -9.1393}
    assert messages[2]["context"]["id"] == "wamid.BUSINESS1"


@pytest.mark.parametrize(
    "body",
    [
        {"phone_number_id": PHONE_NUMBER_ID, "from": "+1555", "text": "Hi"},
        {"phone_number_id": PHONE_NUMBER_ID, "from": "+15550001111", "text": "Hi"},
        {"phone_number_id": "abc", "from": CUSTOMER, "text": "Hi"},
        {"phone_number_id": PHONE_NUMBER_ID, "from": CUSTOMER},
        {"phone_number_id": PHONE_NUMBER_ID, "from": CUSTOMER, "text": ""},
        {"phone_number_id": PHONE_NUMBER_ID, "from": CUSTOMER, "type": "image"},
        {"phone_number_id": PHONE_NUMBER_ID, "from": CUSTOMER, "text": "Hi", "extra": 1},
    ],
)
async def test_bad_inbound_requests_are_400_and_post_nothing(tmp_path: Path, body: Any) -> None:
    async with in_process(tmp_path) as sandbox:
        response = await sandbox.http.post("/sandbox/inbound", json=body, headers=sandbox.auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert sandbox.webhooks == []


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", "Basic abc", "Bearer \u00e9t\u00e9".encode()],
)
async def test_a_simulated_customer_needs_the_sandbox_token(tmp_path: Path, authorization) -> None:
    # Else anyone who can reach the server could write into any sandbox number's inbox.
    body = {"phone_number_id": PHONE_NUMBER_ID, "from": CUSTOMER, "text": "Hi"}
    headers = {} if authorization is None else {"Authorization": authorization}
    async with in_process(tmp_path) as sandbox:
        response = await sandbox.http.post("/sandbox/inbound", json=body, headers=headers)
        missing_body = await sandbox.http.post("/sandbox/inbound", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 190
    assert missing_body.status_code == 401  # the token is checked before the body
    assert sandbox.webhooks == []


async def test_inbound_reports_an_unreachable_receiver(tmp_path: Path) -> None:
    async with running(tmp_path, sandbox_webhook_url="http://127.0.0.1:9/webhooks") as world:
        answer = await world.customer_writes()
    assert answer["webhook_status"] is None
    assert answer["webhook_error"]


def test_the_window_closes_24_hours_after_the_customer_wrote() -> None:
    now = [1_750_000_000.0]
    state = SandboxState(80, clock=lambda: now[0])
    assert not state.window_open(PHONE_NUMBER_ID, "14155550123")
    state.record_inbound(PHONE_NUMBER_ID, "14155550123")
    now[0] += WINDOW_SECONDS - 1
    assert state.window_open(PHONE_NUMBER_ID, "14155550123")
    now[0] += 1
    assert not state.window_open(PHONE_NUMBER_ID, "14155550123")


# --- send validation ---------------------------------------------------------------------------

VALID = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "Hi"}}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"messaging_product": "sms"}, 100),
        ({"to": "+1 415 555"}, 100),
        ({"to": None}, 100),
        ({"recipient_type": "group"}, 100),
        ({"type": "carrier_pigeon"}, 131051),
        ({"text": None}, 100),
        ({"text": {"body": ""}}, 100),
        ({"text": {"body": "Hi", "preview_url": "yes"}}, 100),
        ({"type": "image", "image": {"link": "ftp://example.com/a.jpg"}}, 100),
        ({"type": "image", "image": {}}, 100),
        ({"type": "audio", "audio": {"link": "https://example.com/a.ogg", "caption": "no"}}, 100),
        ({"type": "image", "image": {"link": "https://example.com/a.jpg", "filename": "a"}}, 100),
        ({"type": "location", "location": {"latitude": 91, "longitude": 0}}, 100),
        ({"type": "reaction", "reaction": {"emoji": "👍"}}, 100),
        ({"context": {"message_id": ""}}, 100),
        (
            {
                "type": "template",
                "template": {
                    "name": "spring_sale",
                    "language": {"code": "en_US"},
                    "components": [{"type": "body", "parameters": [{"type": "text"}]}],
                },
            },
            100,
        ),
        ({"type": "template", "template": {"name": "hello_world"}}, 100),
    ],
)
async def test_payloads_meta_would_refuse(tmp_path: Path, change: Any, code: int) -> None:
    async with in_process(tmp_path) as sandbox:
        sandbox.sandbox.state.record_inbound(PHONE_NUMBER_ID, "14155550123")
        response = await sandbox.send({**VALID, **change})
    assert response.status_code == 400
    assert _meta_error(response)["code"] == code


async def test_valid_free_form_types_are_accepted_in_the_window(tmp_path: Path) -> None:
    bodies = [
        {"type": "location", "location": {"latitude": "38.7", "longitude": -9.1, "name": "Shop"}},
        {"type": "reaction", "reaction": {"message_id": "wamid.A", "emoji": "👍"}},
        {"type": "sticker", "sticker": {"id": "1234567890"}},
        {"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"}}},
        {"to": "14155550123", "text": {"body": "no type means text"}, "type": "text"},
    ]
    async with in_process(tmp_path) as sandbox:
        sandbox.sandbox.state.record_inbound(PHONE_NUMBER_ID, "14155550123")
        responses = [await sandbox.send({**VALID, **body}) for body in bodies]
    assert [response.status_code for response in responses] == [200] * len(bodies)


async def test_malformed_requests_get_graph_errors(tmp_path: Path) -> None:
    async with in_process(tmp_path) as sandbox:
        token = {"Authorization": f"Bearer {sandbox.settings.sandbox_access_token}"}
        url = sandbox.messages_url()
        not_json = await sandbox.http.post(url, content=b"{nope", headers=token)
        no_token = await sandbox.http.post(url, json=VALID)
        bad_number = await sandbox.http.post(sandbox.messages_url("me"), json=VALID, headers=token)
    assert _meta_error(not_json)["code"] == 100
    assert no_token.status_code == 401 and _meta_error(no_token)["code"] == 190
    assert "invalid_token" in no_token.headers["www-authenticate"]
    assert (
        _meta_error(bad_number)["code"] == 100 and bad_number.json()["error"]["error_subcode"] == 33
    )


async def test_accepted_sends_are_counted_per_customer_and_refusals_are_not(
    tmp_path: Path,
) -> None:
    template = template_message("+14155550199", "hello_world", "en_US")
    async with in_process(tmp_path, sandbox_messages_per_second=3) as sandbox:
        token = {"Authorization": f"Bearer {sandbox.settings.sandbox_access_token}"}
        assert (await sandbox.http.get("/sandbox/sends")).status_code == 401
        assert (await sandbox.http.get("/sandbox/sends", headers=token)).json() == {
            "data": {"total": 0, "by_recipient": {}}
        }
        assert (await sandbox.send(VALID)).status_code == 400  # outside the window: 131047
        sandbox.sandbox.state.record_inbound(PHONE_NUMBER_ID, "14155550123")
        assert (await sandbox.send(VALID)).status_code == 200
        assert (await sandbox.send(template)).status_code == 200
        over = await sandbox.send(VALID)  # the fourth in a second: 130429
        assert _meta_error(over)["code"] == 130429
        bad_token = await sandbox.http.post(sandbox.messages_url(), json=template)
        assert bad_token.status_code == 401
        counts = (await sandbox.http.get("/sandbox/sends", headers=token)).json()["data"]
    assert counts == {"total": 2, "by_recipient": {"14155550123": 1, "14155550199": 1}}


# --- templates ---------------------------------------------------------------------------------


async def test_the_templates_list_starts_with_metas_hello_world(tmp_path: Path) -> None:
    async with in_process(tmp_path) as sandbox:
        response = await sandbox.http.get("/sandbox/templates")
    templates = response.json()["data"]
    assert templates[0] | {"body": ""} == {
        "name": "hello_world",
        "language": "en_US",
        "body_parameters": 0,
        "category": "utility",
        "body": "",
    }
    assert any(t["body_parameters"] > 0 for t in templates)


async def test_a_templates_file_replaces_the_list_and_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps([{"name": "welcome", "language": "pt_BR", "body_parameters": 1}]))
    async with running(tmp_path, sandbox_templates_file=path) as world:
        listed = (await world.http.get(f"{world.sandbox_url}/templates")).json()["data"]
        ok = await world.client.send(
            world.creds(), template_message(CUSTOMER, "welcome", "pt_BR", params=["Ana"])
        )
        with pytest.raises(MetaError) as gone:
            await world.client.send(
                world.creds(), template_message(CUSTOMER, "hello_world", "en_US")
            )
        path.write_text(json.dumps([{"name": "hello_world", "language": "en_US"}]))
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        back = await world.client.send(
            world.creds(), template_message(CUSTOMER, "hello_world", "en_US")
        )
    assert [t["name"] for t in listed] == ["welcome"]
    assert ok.wamid and back.wamid
    assert gone.value.code == 132001


def test_a_broken_templates_file_fails_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps([{"name": "x", "language": "en_US", "body_parameters": -1}]))
    with pytest.raises(ValueError, match="body_parameters"):
        Sandbox(make_settings(tmp_path, sandbox_templates_file=path))


# --- the wacrm sandbox commands -----------------------------------------------------------------


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(sandbox_app, list(args))


async def test_cli_inbound_prints_the_wamid(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        target = world.sandbox_url.removesuffix("/sandbox")
        common = ["inbound", "--phone-number-id", PHONE_NUMBER_ID, "--from", CUSTOMER]
        plain = await asyncio.to_thread(_invoke, *common, "--text", "Hi", "--target", target)
        as_json = await asyncio.to_thread(
            _invoke, *common, "--text", "Hi", "--name", "Ana", "--target", target, "--json"
        )
        posts = await world.receiver.wait_for(2)
    assert plain.exit_code == 0, plain.output
    assert plain.output.strip().startswith("wamid.")
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.output)
    assert answer["webhook_status"] == 200
    assert (
        posts[1].json["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] == "Ana"
    )


async def test_cli_inbound_fails_clearly(tmp_path: Path) -> None:
    common = ["inbound", "--phone-number-id", PHONE_NUMBER_ID, "--text", "Hi"]
    async with running(tmp_path, receiver_status=401) as world:
        target = world.sandbox_url.removesuffix("/sandbox")
        bad_phone = await asyncio.to_thread(_invoke, *common, "--from", "+1555", "--target", target)
        refused = await asyncio.to_thread(_invoke, *common, "--from", CUSTOMER, "--target", target)
    unreachable = _invoke(*common, "--from", CUSTOMER, "--target", "http://127.0.0.1:9")
    assert bad_phone.exit_code == 1 and "from" in bad_phone.output
    assert refused.exit_code == 1 and "401" in refused.output
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output


async def test_cli_sends_prints_the_counts_with_the_token_it_finds_itself(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        target = world.sandbox_url.removesuffix("/sandbox")
        empty = await asyncio.to_thread(_invoke, "sends", "--target", target, "--json")
        for to in (CUSTOMER, CUSTOMER, "+14155550199"):
            await world.client.send(world.creds(), template_message(to, "hello_world", "en_US"))
        as_json = await asyncio.to_thread(_invoke, "sends", "--target", target, "--json")
        plain = await asyncio.to_thread(_invoke, "sends", "--target", target)
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.output) == {"sends": {"total": 0, "by_recipient": {}}}
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == {
        "sends": {"total": 3, "by_recipient": {"14155550123": 2, "14155550199": 1}}
    }
    assert plain.exit_code == 0, plain.output
    assert plain.output.splitlines() == [
        "3 sends accepted, to 2 numbers",
        "  +14155550123  2",
        "  +14155550199  1",
    ]


async def test_cli_sends_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wacrm.settings import get_settings

    unreachable = _invoke("sends", "--target", "http://127.0.0.1:9")
    async with running(tmp_path) as world:
        target = world.sandbox_url.removesuffix("/sandbox")
        no_sandbox = await asyncio.to_thread(_invoke, "sends", "--target", f"{target}/elsewhere")
        monkeypatch.setenv("WACRM_SECRET_KEY", "another-installation-entirely")
        get_settings.cache_clear()
        try:
            wrong_token = await asyncio.to_thread(_invoke, "sends", "--target", target)
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output
    assert no_sandbox.exit_code == 1 and "no sandbox at" in no_sandbox.output
    assert wrong_token.exit_code == 1 and "401" in wrong_token.output
    assert "Traceback" not in wrong_token.output


@pytest.mark.parametrize("target", ["http://[::1", "http://127.0.0.1:99999", "http://exa mple"])
def test_cli_a_malformed_target_is_a_clean_error(target: str) -> None:
    for args in (("sends",), ("inbound", "--phone-number-id", "1", "--from", "+1", "--text", "x")):
        result = _invoke(*args, "--target", target)
        assert result.exit_code == 1, (target, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.output.startswith("error: "), result.output
