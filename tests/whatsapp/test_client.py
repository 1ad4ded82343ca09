"""The Cloud API client against the sandbox over real loopback HTTP, and against servers that
misbehave in the ways Meta's edge can: hang, hang up, answer HTML."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.whatsapp import CUSTOMER, World, make_settings, running
from wacrm.channels.service import ChannelCredentials
from wacrm.kit.errors import BadRequest
from wacrm.models import ChannelKind
from wacrm.whatsapp.client import CloudApiClient, MetaError, MetaOutcomeUnknown, SendResult
from wacrm.whatsapp.payloads import media_message, template_message, text_message

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A bare TCP server for answers no well-behaved framework would give."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)


async def _send_to(world: World, base_url: str) -> SendResult:
    creds = dataclasses.replace(world.creds(), base_url=base_url)
    return await world.client.send(creds, template_message(CUSTOMER, "hello_world", "en_US"))


# --- builders -----------------------------------------------------------------------------


def test_builders_make_metas_request_bodies() -> None:
    assert text_message("+14155550123", "Hi", reply_to="wamid.IN1") == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "14155550123",
        "type": "text",
        "text": {"preview_url": False, "body": "Hi"},
        "context": {"message_id": "wamid.IN1"},
    }
    template = template_message(CUSTOMER, "order_update", "en_US", params=["Ana", "#42"])
    assert template["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}],
            }
        ],
    }
    assert "components" not in template_message(CUSTOMER, "hello_world", "en_US")["template"]
    document = media_message(
        CUSTOMER, "document", "https://example.com/i.pdf", caption="Invoice", filename="i.pdf"
    )
    assert document["type"] == "document"
    assert document["document"] == {
        "link": "https://example.com/i.pdf",
        "caption": "Invoice",
        "filename": "i.pdf",
    }


@pytest.mark.parametrize(
    "build",
    [
        lambda: text_message(CUSTOMER, "   "),
        lambda: text_message("not a number", "Hi"),
        lambda: text_message(CUSTOMER, "Hi", reply_to=" "),
        lambda: template_message(CUSTOMER, "", "en_US"),
        lambda: template_message(CUSTOMER, "x", "en_US", params=["a"], components=[]),
        lambda: template_message(CUSTOMER, "x", "en_US", params=["a", ""]),
        lambda: media_message(CUSTOMER, "audio", "https://example.com/a.ogg", caption="no"),
        lambda: media_message(CUSTOMER, "image", "https://example.com/a.jpg", filename="a"),
        lambda: media_message(CUSTOMER, "image", "ftp://example.com/a.jpg"),
        lambda: media_message(CUSTOMER, "sticker", "https://example.com/a.webp"),
        lambda: media_message(CUSTOMER, "image", "https://example.com/a.jpg", caption="x" * 1025),
    ],
)
def test_builders_refuse_what_meta_would(build: Callable[[], object]) -> None:
    with pytest.raises(BadRequest):
        build()


# --- success ------------------------------------------------------------------------------


async def test_a_text_inside_the_window_is_accepted_with_a_wamid(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        await world.customer_writes("Hello?")
        result = await world.client.send(world.creds(), text_message(CUSTOMER, "Hi Ana!"))
    assert result.wamid.startswith("wamid.")
    assert result.wa_id == "14155550123"


async def test_the_success_body_is_metas(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        headers = {"Authorization": f"Bearer {world.settings.sandbox_access_token}"}
        url = world.client.messages_url(world.creds())
        payload = template_message(CUSTOMER, "hello_world", "en_US")
        response = await world.http.post(url, json=payload, headers=headers)
    assert url.endswith(f"/sandbox/{world.settings.graph_api_version}/109876543210987/messages")
    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "14155550123", "wa_id": "14155550123"}]
    assert len(body["messages"]) == 1 and body["messages"][0]["id"].startswith("wamid.")


async def test_templates_with_positional_params_or_metas_components(tmp_path: Path) -> None:
    components = [
        {"type": "header", "parameters": []},
        {
            "type": "BODY",
            "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}],
        },
    ]
    async with running(tmp_path) as world:
        creds = world.creds()
        plain = await world.client.send(creds, template_message(CUSTOMER, "hello_world", "en_US"))
        positional = await world.client.send(
            creds, template_message(CUSTOMER, "order_update", "en_US", params=["Ana", "#42"])
        )
        structured = await world.client.send(
            creds, template_message(CUSTOMER, "order_update", "es", components=components)
        )
    assert len({plain.wamid, positional.wamid, structured.wamid}) == 3


async def test_media_by_link_and_replies(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        inbound = await world.customer_writes("Can you send the invoice?")
        creds, link = world.creds(), "https://example.com/files/invoice.pdf"
        payloads = [
            media_message(CUSTOMER, "image", "https://example.com/a.jpg", caption="The planter"),
            media_message(CUSTOMER, "video", "https://example.com/a.mp4", caption="Unboxing"),
            media_message(CUSTOMER, "document", link, caption="Invoice", filename="invoice.pdf"),
            media_message(CUSTOMER, "audio", "https://example.com/a.ogg"),
            text_message(CUSTOMER, "Here it is", reply_to=inbound["wamid"]),
        ]
        results = [await world.client.send(creds, payload) for payload in payloads]
    assert all(result.wamid.startswith("wamid.") for result in results)


# --- Meta's refusals ------------------------------------------------------------------------


async def test_a_bad_token_is_metas_190(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        with pytest.raises(MetaError) as caught:
            await world.client.send(
                world.creds(token="EAAG-not-the-token"),
                template_message(CUSTOMER, "hello_world", "en_US"),
            )
    assert caught.value.code == 190
    assert caught.value.http_status == 401
    assert caught.value.retry_later is False


async def test_text_over_4096_characters_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        text_message(CUSTOMER, "x" * 4097)
    payload = text_message(CUSTOMER, "x" * 4096)
    payload["text"]["body"] = "x" * 4097  # as a client without our builder would send it
    async with running(tmp_path) as world:
        await world.customer_writes()
        with pytest.raises(MetaError) as caught:
            await world.client.send(world.creds(), payload)
        exactly = await world.client.send(world.creds(), text_message(CUSTOMER, "é" * 4096))
    assert caught.value.code == 100
    assert "4096" in (caught.value.details or "")
    assert caught.value.retry_later is False
    assert exactly.wamid


async def test_an_unknown_template_or_language_is_132001(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        for name, language in [("no_such_template", "en_US"), ("hello_world", "pt_BR")]:
            with pytest.raises(MetaError) as caught:
                await world.client.send(world.creds(), template_message(CUSTOMER, name, language))
            assert caught.value.code == 132001
            assert caught.value.title == "Template name does not exist in the translation"


async def test_the_wrong_number_of_body_params_is_132000(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        for params in (["Ana"], ["Ana", "#42", "extra"], None):
            payload = template_message(CUSTOMER, "order_update", "en_US", params=params)
            with pytest.raises(MetaError) as caught:
                await world.client.send(world.creds(), payload)
            assert caught.value.code == 132000


async def test_free_form_needs_the_customer_to_have_written_within_24_hours(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as world:
        with pytest.raises(MetaError) as caught:
            await world.client.send(world.creds(), text_message(CUSTOMER, "Hi"))
        await world.customer_writes("Hello", customer="14155550123")
        inside = await world.client.send(world.creds(), text_message(CUSTOMER, "Hi"))
        with pytest.raises(MetaError) as other_customer:
            await world.client.send(world.creds(), text_message("+14155550124", "Hi"))
        other_number = world.creds(phone_number_id="100000000000999")
        with pytest.raises(MetaError) as other_business_number:
            await world.client.send(other_number, text_message(CUSTOMER, "Hi"))
    assert caught.value.code == 131047 and caught.value.http_status == 400
    assert not caught.value.retry_later
    assert inside.wamid
    assert other_customer.value.code == other_business_number.value.code == 131047


async def test_over_the_sandbox_throughput_is_130429_and_retried_later(tmp_path: Path) -> None:
    async with running(tmp_path, sandbox_messages_per_second=2) as world:
        payload = template_message(CUSTOMER, "hello_world", "en_US")
        outcomes = await asyncio.gather(
            *(world.client.send(world.creds(), payload) for _ in range(6)), return_exceptions=True
        )
    refused = [outcome for outcome in outcomes if isinstance(outcome, MetaError)]
    assert any(isinstance(outcome, SendResult) for outcome in outcomes)
    assert refused and all(error.code == 130429 for error in refused)
    assert all(error.retry_later and error.http_status == 400 for error in refused)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (MetaError("x", code=130429, http_status=400), True),
        (MetaError("x", code=131056, http_status=400), True),
        (MetaError("x", code=80007, http_status=400), True),
        (MetaError("x", code=131000, http_status=500), True),
        (MetaError("x", http_status=503), True),
        (MetaError("x", http_status=429), True),
        (MetaError("x", not_sent=True), True),
        (MetaError("x", code=131047, http_status=400), False),
        (MetaError("x", code=132001, http_status=404), False),
        (MetaError("x", code=190, http_status=401), False),
    ],
)
def test_what_is_retried_later(error: MetaError, retry: bool) -> None:
    assert error.retry_later is retry


# --- transport failures ----------------------------------------------------------------------


async def test_no_answer_within_the_timeout_is_an_unknown_outcome(tmp_path: Path) -> None:
    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(30)

    async with (
        running(tmp_path, whatsapp_timeout_seconds=0.3) as world,
        raw_server(never_answers) as url,
    ):
        with pytest.raises(MetaOutcomeUnknown):
            await _send_to(world, url)


async def test_a_connection_dropped_after_the_request_is_an_unknown_outcome(
    tmp_path: Path,
) -> None:
    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    async with running(tmp_path) as world, raw_server(hangs_up) as url:
        with pytest.raises(MetaOutcomeUnknown):
            await _send_to(world, url)


async def test_an_idle_connection_is_not_reused_as_the_server_closes_it(tmp_path: Path) -> None:
    """The keep-alive race: a server closes a connection idle for its timeout just as the
    client sends on it; the send then has an unknown outcome. Modelled here by a server that
    drops, unanswered, a request arriving on a connection idle for 3 s; the client must have
    let such a connection go by then (uvicorn's timeout is 5 s: so was httpx's expiry)."""
    accepted = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.KEEPALIVE"}]}'

    async def closes_idle_connections(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        idle_since = time.monotonic()
        while not reader.at_eof():
            await _read_request(reader)
            if time.monotonic() - idle_since >= 3.0:
                writer.close()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(accepted)}\r\n\r\n".encode()
                + accepted
            )
            await writer.drain()
            idle_since = time.monotonic()

    client = CloudApiClient(make_settings(tmp_path))  # its own pool, as in production
    creds = ChannelCredentials(
        channel_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        kind=ChannelKind.SANDBOX,
        phone_number_id="109876543210987",
        base_url="",
        access_token="token",
    )
    message = template_message(CUSTOMER, "hello_world", "en_US")
    try:
        async with raw_server(closes_idle_connections) as url:
            creds = dataclasses.replace(creds, base_url=url)
            assert (await client.send(creds, message)).wamid == "wamid.KEEPALIVE"
            await asyncio.sleep(3.2)
            assert (await client.send(creds, message)).wamid == "wamid.KEEPALIVE"
    finally:
        await client.aclose()


async def test_a_non_json_502_is_a_meta_error_to_retry(tmp_path: Path) -> None:
    async def bad_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        html = b"<html><body>502 Bad Gateway</body></html>"
        writer.write(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
            + f"Content-Length: {len(html)}\r\nConnection: close\r\n\r\n".encode()
            + html
        )
        await writer.drain()
        writer.close()

    async with running(tmp_path) as world, raw_server(bad_gateway) as url:
        with pytest.raises(MetaError) as caught:
            await _send_to(world, url)
    assert caught.value.code is None and caught.value.http_status == 502
    assert "non-JSON" in caught.value.message
    assert caught.value.retry_later is True


async def test_an_unexpected_4xx_body_is_a_final_meta_error(tmp_path: Path) -> None:
    async def teapot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        body = b'{"oops": true}'
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async with running(tmp_path) as world, raw_server(teapot) as url:
        with pytest.raises(MetaError) as caught:
            await _send_to(world, url)
    assert caught.value.code is None and not caught.value.retry_later
    assert "unexpected JSON" in caught.value.message


async def test_a_2xx_without_a_wamid_is_an_unknown_outcome(tmp_path: Path) -> None:
    async def no_id(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        body = b'{"messaging_product": "whatsapp", "messages": []}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async with running(tmp_path) as world, raw_server(no_id) as url:
        with pytest.raises(MetaOutcomeUnknown):
            await _send_to(world, url)


async def test_an_unreachable_api_was_never_sent_and_is_retried_later(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the socket closes
    async with running(tmp_path) as world:
        with pytest.raises(MetaError) as caught:
            await _send_to(world, f"http://127.0.0.1:{closed_port}")
    assert caught.value.code is None and caught.value.not_sent
    assert caught.value.retry_later is True


async def test_a_misconfigured_base_url_is_a_final_error(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        with pytest.raises(MetaError) as caught:
            await _send_to(world, "ftp://graph.example.com")
    assert caught.value.code is None and not caught.value.retry_later


# --- throttle and secrets -------------------------------------------------------------------


async def test_sends_from_one_number_wait_for_the_throttle(tmp_path: Path) -> None:
    async with running(tmp_path, whatsapp_messages_per_second=20) as world:
        payload = template_message(CUSTOMER, "hello_world", "en_US")
        started = time.monotonic()
        results = await asyncio.gather(
            *(world.client.send(world.creds(), payload) for _ in range(30))
        )
        elapsed = time.monotonic() - started
    assert len({result.wamid for result in results}) == 30
    assert elapsed >= 1.0  # 30 sends at 20/s: at least 29 intervals of 50 ms


async def test_the_access_token_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "EAAG-secret-token-never-in-logs"
    async with running(tmp_path) as world:
        creds = world.creds(token=token)
        with pytest.raises(MetaError) as caught:
            await world.client.send(creds, template_message(CUSTOMER, "hello_world", "en_US"))
        assert token not in repr(creds)
    assert token not in caplog.text
    assert token not in str(caught.value) and token not in repr(caught.value.as_dict())


async def test_the_client_closes_cleanly(tmp_path: Path) -> None:
    client = CloudApiClient(make_settings(tmp_path))
    await client.aclose()
