"""One HTTP attempt to a receiver, connecting only to the addresses vetted for it.

Before every attempt the stored URL is checked again (`normalise_webhook_url`) and its host
resolved once (`resolve_public_addresses`). The connection pool's network backend then dials
one of exactly those addresses: it is told them through a context variable set for the
attempt, and refuses to connect anywhere else. The URL itself is left untouched, so the Host
header, the TLS SNI name and certificate verification all use the real host name, and pooled
connections are kept per host name, never shared between names that happen to share an IP.

Redirects are never followed (httpcore has no such feature), the whole exchange has one
deadline (a receiver dripping one byte at a time cannot hold a worker), and at most
`MAX_READ_BYTES` of a response are ever read.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import ssl
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from wacrm import __version__
from wacrm.webhooks.ssrf import (
    Resolver,
    UnsafeWebhookUrl,
    is_globally_routable,
    normalise_webhook_url,
    resolve_public_addresses,
)

EXCERPT_BYTES = 1024
MAX_READ_BYTES = 64 * 1024
USER_AGENT = f"wacrm-webhooks/{__version__}"


@dataclass(frozen=True)
class VettedTarget:
    url: str  # canonical: the string that was checked is the one requested
    host: str  # as the connection pool sees it (IPv6 without brackets)
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class AttemptResult:
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    retry_after: float | None  # seconds, from the receiver's Retry-After

    @property
    def gone(self) -> bool:
        return self.status_code == 410


_vetted: ContextVar[VettedTarget | None] = ContextVar("wacrm_webhook_target", default=None)


async def vet_url(
    raw: str, *, allow_private: bool, resolve_seconds: float, resolver: Resolver | None = None
) -> VettedTarget:
    """Check a webhook URL and resolve its host; raise `UnsafeWebhookUrl` unless all is safe."""
    url = normalise_webhook_url(raw, allow_private=allow_private)
    origin = httpcore.URL(url).origin
    host, port = origin.host.decode("ascii"), origin.port
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        try:
            async with asyncio.timeout(resolve_seconds):
                addresses = await resolve_public_addresses(
                    host, port, allow_private=allow_private, resolver=resolver
                )
        except TimeoutError:
            raise UnsafeWebhookUrl(f"resolving {host} took over {resolve_seconds:g} s") from None
        return VettedTarget(url, host, port, tuple(addresses))
    if not allow_private and not is_globally_routable(literal):
        raise UnsafeWebhookUrl(f"webhook host {host} is not a public address")
    return VettedTarget(url, host, port, (str(literal),))


class VettedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Dials only the addresses vetted for the current attempt, whatever host was asked for."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = _vetted.get()
        if target is None or (target.host, target.port) != (host, port):
            raise httpcore.ConnectError(f"{host}:{port} was not vetted for this delivery")
        failure: Exception | None = None
        for address in target.addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # a VettedTarget always has an address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookSender:
    """A connection pool for deliveries; one per worker process."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float,
        max_connections: int,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._resolver = resolver
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30,
            network_backend=VettedNetworkBackend(),
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
        """POST ``body`` to ``url`` once. Never raises for anything the receiver does."""
        started = time.perf_counter()
        try:
            target = await vet_url(
                url,
                allow_private=self._allow_private,
                resolve_seconds=self._timeout,
                resolver=self._resolver,
            )
        except UnsafeWebhookUrl as exc:
            return _failure(started, f"blocked: {exc}")
        token = _vetted.set(target)
        try:
            return await self._exchange(target, headers, body, started)
        finally:
            _vetted.reset(token)

    async def _exchange(
        self, target: VettedTarget, headers: dict[str, str], body: bytes, started: float
    ) -> AttemptResult:
        sent = {
            **headers,
            "host": target.url.split("/")[2],
            "user-agent": USER_AGENT,
            "content-type": "application/json",
            "content-length": str(len(body)),
        }
        phases = dict.fromkeys(("connect", "read", "write", "pool"), self._timeout)
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._pool.stream(
                    "POST",
                    target.url,
                    headers=list(sent.items()),
                    content=body,
                    extensions={"timeout": phases},
                ) as response,
            ):
                excerpt = await _read_excerpt(response)
        except (TimeoutError, httpcore.TimeoutException):
            return _failure(started, f"no complete response within {self._timeout:g} s")
        except httpcore.ConnectError as exc:
            return _failure(started, f"could not connect: {_describe(exc)}")
        except (httpcore.ReadError, httpcore.WriteError) as exc:
            return _failure(started, f"connection lost: {_describe(exc)}")
        except httpcore.ProtocolError as exc:
            return _failure(started, f"invalid HTTP response: {_describe(exc)}")
        except (OSError, httpcore.NetworkError) as exc:
            return _failure(started, f"network error: {_describe(exc)}")
        status = response.status
        succeeded = 200 <= status < 300
        error = None
        if not succeeded:
            error = "redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
        return AttemptResult(
            succeeded=succeeded,
            status_code=status,
            latency_ms=_elapsed_ms(started),
            error=error,
            response_body=clean_text(excerpt.decode("utf-8", errors="replace")),
            retry_after=None if succeeded else parse_retry_after(_header(response, b"retry-after")),
        )


async def _read_excerpt(response: httpcore.Response) -> bytes:
    """The first KiB of the body, reading no more than `MAX_READ_BYTES` of it."""
    kept = bytearray()
    read = 0
    stream = response.aiter_stream()
    async for chunk in stream:
        read += len(chunk)
        if len(kept) < EXCERPT_BYTES:
            kept += chunk[: EXCERPT_BYTES - len(kept)]
        if read >= MAX_READ_BYTES:
            break  # the rest is never read: the connection is closed, not reused
    return bytes(kept)


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value[:9]))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def clean_text(text: str, limit: int | None = None) -> str:
    """Text safe to store on every database: no NUL (PostgreSQL refuses it), clipped."""
    text = text.replace("\x00", "\ufffd")
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: Exception) -> str:
    return clean_text(str(exc) or type(exc).__name__, 300)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _failure(started: float, error: str) -> AttemptResult:
    return AttemptResult(
        succeeded=False,
        status_code=None,
        latency_ms=_elapsed_ms(started),
        error=clean_text(error, 500),
        response_body=None,
        retry_after=None,
    )
