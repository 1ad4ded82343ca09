"""Real loopback servers for the WhatsApp tests: the sandbox, and a receiver for its webhooks.

Kept here (not in a conftest) so both test modules import the same small helpers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from wacrm.channels.service import ChannelCredentials
from wacrm.models import ChannelKind
from wacrm.settings import Settings
from wacrm.whatsapp.client import CloudApiClient
from wacrm.whatsapp.sandbox import create_sandbox_app, create_standalone_app
from wacrm.whatsapp.sandbox.service import Sandbox

PHONE_NUMBER_ID = "109876543210987"
# Building an SSL context costs ~35 ms; the tests make several clients each, all on http.
SSL_CONTEXT = ssl.create_default_context()
CUSTOMER = "+14155550123"


class Servers:
    """Real uvicorn servers on free loopback ports, stopped together (each stop takes ~0.2 s)."""

    def __init__(self) -> None:
        self._running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(self, app: ASGIApp) -> str:
        """Serve ``app``; returns its base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._running.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for server, _ in self._running:
            server.should_exit = True
        await asyncio.gather(*(task for _, task in self._running))
        self._running.clear()


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Run ``app`` in a real uvicorn server on a free loopback port; yields its base URL."""
    servers = Servers()
    try:
        yield await servers.start(app)
    finally:
        await servers.stop()


@dataclass
class Post:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-hub-signature-256", ""), expected)

    @property
    def statuses(self) -> list[dict[str, Any]]:
        value = self.json["entry"][0]["changes"][0]["value"]
        return list(value.get("statuses", []))


@dataclass
class Receiver:
    """Stands in for wacrm's ``/webhooks/whatsapp``: records every post, answers ``status``."""

    status: int = 200
    posts: list[Post] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.posts.append(Post(dict(request.headers), await request.body()))
            self._arrived.set()
            return Response(status_code=self.status)

        return Starlette(routes=[Route("/webhooks/whatsapp", receive, methods=["POST"])])

    async def wait_for(self, count: int, timeout: float = 5) -> list[Post]:
        async with asyncio.timeout(timeout):
            while len(self.posts) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.posts


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": "test-secret-key-not-for-production",
        "var_dir": tmp_path,
        "database_url": "sqlite+aiosqlite:///:memory:",
        "sandbox_status_delay_seconds": 0.01,
        **changes,
    }
    return Settings(**values)


@dataclass
class World:
    settings: Settings
    sandbox_url: str
    receiver: Receiver
    client: CloudApiClient
    http: httpx.AsyncClient

    def creds(self, token: str | None = None, phone_number_id: str = PHONE_NUMBER_ID) -> Any:
        return ChannelCredentials(
            channel_id=uuid.uuid4(),
            account_id=uuid.uuid4(),
            kind=ChannelKind.SANDBOX,
            phone_number_id=phone_number_id,
            base_url=self.sandbox_url,
            access_token=self.settings.sandbox_access_token if token is None else token,
        )

    async def customer_writes(
        self, text: str = "Hi", customer: str = CUSTOMER, **extra: Any
    ) -> dict[str, Any]:
        body = {"phone_number_id": PHONE_NUMBER_ID, "from": customer, "text": text, **extra}
        auth = {"Authorization": f"Bearer {self.settings.sandbox_access_token}"}
        response = await self.http.post(f"{self.sandbox_url}/inbound", json=body, headers=auth)
        assert response.status_code == 200, response.text
        return dict(response.json())


@asynccontextmanager
async def running(
    tmp_path: Path, receiver_status: int = 200, **changes: Any
) -> AsyncIterator[World]:
    """Receiver and sandbox on loopback, and a client pointed at the sandbox."""
    receiver = Receiver(status=receiver_status)
    servers = Servers()
    try:
        receiver_url = await servers.start(receiver.app())
        changes.setdefault("sandbox_webhook_url", f"{receiver_url}/webhooks/whatsapp")
        settings = make_settings(tmp_path, **changes)
        sandbox_base = await servers.start(create_standalone_app(settings))
        client = CloudApiClient(settings, ssl=SSL_CONTEXT)
        async with httpx.AsyncClient(timeout=10, verify=SSL_CONTEXT) as http:
            try:
                yield World(settings, f"{sandbox_base}/sandbox", receiver, client, http)
            finally:
                await client.aclose()
    finally:
        await servers.stop()


@dataclass
class InProcess:
    """The sandbox mounted at /sandbox in another app, as ``wacrm serve`` embeds it."""

    http: httpx.AsyncClient
    settings: Settings
    sandbox: Sandbox
    webhooks: list[httpx.Request]

    def messages_url(self, phone_number_id: str = PHONE_NUMBER_ID) -> str:
        return f"/sandbox/{self.settings.graph_api_version}/{phone_number_id}/messages"

    async def send(self, payload: Any) -> httpx.Response:
        return await self.http.post(self.messages_url(), json=payload, headers=self.auth)

    @property
    def auth(self) -> dict[str, str]:
        """The sandbox's token, as sends and simulated customers present it."""
        return {"Authorization": f"Bearer {self.settings.sandbox_access_token}"}


@asynccontextmanager
async def in_process(tmp_path: Path, **changes: Any) -> AsyncIterator[InProcess]:
    """No sockets: fast, for the validation tables; webhooks are recorded, not posted."""
    settings = make_settings(tmp_path, **changes)
    posted: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(200)

    sandbox_app = create_sandbox_app(settings, webhook_transport=httpx.MockTransport(record))
    host = FastAPI()
    host.mount("/sandbox", sandbox_app)
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://wacrm") as http:
        try:
            yield InProcess(http, settings, sandbox_app.state.sandbox, posted)
        finally:
            await sandbox_app.state.sandbox.aclose()
