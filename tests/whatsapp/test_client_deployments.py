"""The aiohttp Cloud API client with base URLs and deployments httpx handled: bad URLs are
final errors (nothing sent), and the proxy the environment names is used."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.whatsapp import CUSTOMER, make_settings
from tests.whatsapp.test_client import raw_server
from wacrm.channels.service import ChannelCredentials
from wacrm.models import ChannelKind
from wacrm.whatsapp.client import CloudApiClient, MetaError
from wacrm.whatsapp.payloads import template_message


def _creds(base_url: str) -> ChannelCredentials:
    return ChannelCredentials(
        channel_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        kind=ChannelKind.SANDBOX,
        phone_number_id="109876543210987",
        base_url=base_url,
        access_token="token",
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "http://graph..example.com",  # an empty DNS label
        "http://" + "a" * 64 + ".example.com",  # a DNS label over 63 characters
        "http://user:secret@127.0.0.1:9",  # credentials in the URL
    ],
)
async def test_a_bad_base_url_is_a_meta_error_never_an_uncaught_exception(
    tmp_path: Path, base_url: str
) -> None:
    """Nothing was sent in any of these; httpx raised ConnectError (retried later). aiohttp
    raises UnicodeError / ValueError, which neither `send` nor `call_meta` catch: POST
    /messages answers 500 with the message left `pending` (later `unknown`), and a
    broadcast's recipient is left `sending` (later `unknown`: "may have been sent")."""
    client = CloudApiClient(make_settings(tmp_path))
    try:
        with pytest.raises(MetaError) as caught:
            await client.send(_creds(base_url), template_message(CUSTOMER, "hello_world", "en_US"))
    finally:
        await client.aclose()
    assert caught.value.code is None


async def test_sends_go_through_the_proxy_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx (the client before this change) honours HTTP(S)_PROXY / NO_PROXY by default
    (trust_env=True); aiohttp ignores them unless told to. A deployment whose workers reach
    graph.facebook.com only through an egress proxy went from sending to "Cloud API
    unreachable" on every send (retried until it fails)."""
    seen: list[bytes] = []
    accepted = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.PROXIED"}]}'

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(accepted)}\r\n\r\n".encode()
            + accepted
        )
        await writer.drain()
        writer.close()

    async with raw_server(proxy) as proxy_url:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        client = CloudApiClient(make_settings(tmp_path))
        try:
            result = await client.send(
                _creds("http://graph.example.invalid"),
                template_message(CUSTOMER, "hello_world", "en_US"),
            )
        finally:
            await client.aclose()
    assert result.wamid == "wamid.PROXIED"
    assert seen and seen[0].startswith(b"POST http://graph.example.invalid/")
