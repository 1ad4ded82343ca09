"""Loopback webhook receivers: a raw asyncio HTTP/1.1 server whose answers tests script.

Raw rather than uvicorn so a test can make the receiver misbehave the ways real ones do:
hang, reset the connection, answer with an endless body, redirect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    behaviour: str = "normal"  # normal | close (after answering) | hang | reset | endless


Script = Callable[[Received, int], Answer]


def always(answer: Answer) -> Script:
    return lambda _request, _n: answer


def in_turn(*answers: Answer) -> Script:
    """The n-th request gets the n-th answer; the last one repeats."""
    return lambda _request, n: answers[min(n, len(answers) - 1)]


def failing_first(*failures: Answer) -> Script:
    """Each event (by ``webhook-id``) gets ``failures`` in turn, then 200."""
    seen: dict[str, int] = {}

    def answer(request: Received, _n: int) -> Answer:
        n = seen[request.headers["webhook-id"]] = seen.get(request.headers["webhook-id"], -1) + 1
        return failures[n] if n < len(failures) else Answer()

    return answer


class Receiver:
    def __init__(
        self,
        script: Script | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        delay: float = 0.0,
    ) -> None:
        self.script = script or always(Answer())
        self.received: list[Received] = []
        self.peers: set[str] = set()
        self.connections = 0
        self._ssl = ssl_context
        self._delay = delay
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def event_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        self.peers.add(writer.get_extra_info("peername")[0])
        self.connections += 1
        try:
            while request := await _read_request(reader):
                answer = self.script(request, len(self.received))
                self.received.append(request)
                if self._delay:
                    await asyncio.sleep(self._delay)
                if not await _answer(writer, answer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # the server is closing under a hanging answer
            pass
        finally:
            self._handlers.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, path, headers, body)


async def _answer(writer: asyncio.StreamWriter, answer: Answer) -> bool:
    """Write the answer; False when the connection must end."""
    if answer.behaviour == "hang":
        await asyncio.sleep(3600)
    if answer.behaviour == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False
    headers = {"content-length": str(len(answer.body)), **answer.headers}
    if answer.behaviour == "endless":
        headers["content-length"] = str(1 << 40)
    head = f"HTTP/1.1 {answer.status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode() + b"\r\n" + answer.body)
    await writer.drain()
    if answer.behaviour == "endless":
        chunk = b"x" * 65536
        while True:  # until the client hangs up
            writer.write(chunk)
            await writer.drain()
    return answer.behaviour != "close"
