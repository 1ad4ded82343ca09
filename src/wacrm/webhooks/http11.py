"""A small HTTP/1.1 client for deliveries: it only ever dials addresses it is handed.

Why not httpx: its pool needs a name to resolve (a second lookup could be answered
differently: DNS rebinding), and it costs several milliseconds per request once dozens of
connections are open. Here the caller resolves and vets the host once, and `open_connection`
connects to one of those addresses, with the host name kept for the Host header, TLS SNI and
certificate verification. Keep-alive connections are pooled per (scheme, host name, port), so
a connection is only reused for the name it was opened and verified for. Redirects are never
followed; at most `max_read` bytes of a response are read, the rest is never received.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass

import h11

PoolKey = tuple[str, str, int]  # scheme, host name, port
_READ_CHUNK = 65536


class ConnectFailed(Exception):
    """No vetted address of the host accepted a connection (or TLS failed)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    excerpt: bytes


class Connection:
    def __init__(
        self, key: PoolKey, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.idle_since = time.monotonic()
        self.reused = False

    def usable(self, keepalive: float) -> bool:
        return (
            time.monotonic() - self.idle_since < keepalive
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


async def open_connection(
    key: PoolKey, addresses: tuple[str, ...], ssl_context: ssl.SSLContext
) -> Connection:
    """Connect to the first of ``addresses`` that answers; TLS is checked against the name."""
    scheme, host, port = key
    failure: Exception | None = None
    for address in addresses:
        try:
            if scheme == "https":
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=ssl_context, server_hostname=host
                )
            else:
                reader, writer = await asyncio.open_connection(address, port)
        except (OSError, ssl.SSLError) as exc:
            failure = exc
            continue
        return Connection(key, reader, writer)
    raise ConnectFailed(str(failure) or type(failure).__name__) from failure


class ConnectionPool:
    """Idle keep-alive connections per (scheme, host name, port); at most ``max_idle`` in all."""

    def __init__(self, ssl_context: ssl.SSLContext, *, max_idle: int, keepalive: float = 30):
        self._ssl = ssl_context
        self._max_idle = max_idle
        self._keepalive = keepalive
        self._idle: dict[PoolKey, list[Connection]] = {}
        self._count = 0

    def take(self, key: PoolKey) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            self._count -= 1
            if connection.usable(self._keepalive):
                connection.reused = True
                return connection
            connection.close()
        return None

    def give_back(self, connection: Connection) -> None:
        if self._count >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.key, []).append(connection)
        self._count += 1

    async def open(self, key: PoolKey, addresses: tuple[str, ...]) -> Connection:
        return await open_connection(key, addresses, self._ssl)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._count = 0


async def post(
    connection: Connection,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    excerpt_bytes: int,
    max_read: int,
) -> tuple[Response, bool]:
    """POST on ``connection``; returns the response and whether the connection can be reused.

    Raises ``ConnectionError``/``OSError`` if the connection breaks, and
    ``h11.RemoteProtocolError`` if the answer is not HTTP/1.1.
    """
    protocol = connection.protocol
    request = h11.Request(method="POST", target=target, headers=headers)
    connection.writer.write(
        protocol.send(request)
        + protocol.send(h11.Data(data=body))
        + protocol.send(h11.EndOfMessage())
    )
    await connection.writer.drain()
    status: int | None = None
    response_headers: list[tuple[bytes, bytes]] = []
    kept = bytearray()
    read = 0
    while True:
        event = protocol.next_event()
        if event is h11.NEED_DATA:
            if read >= max_read:
                break  # enough: the rest is never read, and the connection is closed
            protocol.receive_data(await connection.reader.read(_READ_CHUNK))
        elif isinstance(event, h11.Response):
            status, response_headers = event.status_code, list(event.headers)
        elif isinstance(event, h11.Data):
            read += len(event.data)
            if len(kept) < excerpt_bytes:
                kept += event.data[: excerpt_bytes - len(kept)]
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
        # InformationalResponse (1xx) is skipped: the final response follows.
    if status is None:
        raise ConnectionResetError("the connection closed before a response")
    reusable = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
    if reusable:
        with contextlib.suppress(h11.LocalProtocolError):
            protocol.start_next_cycle()
            return Response(status, response_headers, bytes(kept)), True
    return Response(status, response_headers, bytes(kept)), False
