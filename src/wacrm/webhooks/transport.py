"""One HTTP attempt to a receiver, connecting only to the addresses vetted for it.

Before every attempt the stored URL is checked again (`normalise_webhook_url`) and its host
resolved once (`resolve_public_addresses`); the connection goes to one of exactly those
addresses (`http11`), while the Host header, TLS SNI and certificate verification use the
real host name. The whole exchange has one deadline (a receiver dripping one byte at a time
cannot hold a worker), redirects are never followed, and at most `MAX_READ_BYTES` of a
response are ever read.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import h11
import httpx

from wacrm import __version__
from wacrm.webhooks.http11 import ConnectFailed, ConnectionPool, PoolKey, Response, post
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
    host: str  # IPv6 without brackets
    port: int
    addresses: tuple[str, ...]

    @property
    def key(self) -> PoolKey:
        return (self.url.split(":", 1)[0], self.host, self.port)

    @property
    def authority(self) -> str:
        """The Host header: the canonical URL's host, and its port unless the default."""
        return self.url.split("/")[2]

    @property
    def target(self) -> str:
        """Path and query, as sent in the request line (the canonical URL always has a path)."""
        return self.url[self.url.index("/", len(self.url.split("/")[0]) + 2) :]


@dataclass(frozen=True)
class AttemptResult:
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    retry_after: float | None  # seconds, from the receiver's Retry-After
    # Our fault (e.g. a secret that cannot be decrypted): retried, never held against the
    # endpoint's health.
    internal: bool = False

    @property
    def gone(self) -> bool:
        return self.status_code == 410


async def vet_url(
    raw: str, *, allow_private: bool, resolve_seconds: float, resolver: Resolver | None = None
) -> VettedTarget:
    """Check a webhook URL and resolve its host; raise `UnsafeWebhookUrl` unless all is safe."""
    url, host, port = _parsed(raw, allow_private)
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


@functools.lru_cache(maxsize=4096)
def _parsed(raw: str, allow_private: bool) -> tuple[str, str, int]:
    """The canonical URL, its host and port (pure and repeated for every attempt: cached;
    exceptions are not cached, so a refused URL is checked afresh each time)."""
    url = normalise_webhook_url(raw, allow_private=allow_private)
    parts = urlsplit(url)
    return url, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class WebhookSender:
    """POSTs deliveries over pooled keep-alive connections; one per worker process."""

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
        context = ssl_context or httpx.create_ssl_context()
        self._pool = ConnectionPool(context, max_idle=max_connections)

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
        sent = [
            ("Host", target.authority),
            *headers.items(),
            ("User-Agent", USER_AGENT),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._exchange(target, sent, body)
        except TimeoutError:
            return _failure(started, f"no complete response within {self._timeout:g} s")
        except ConnectFailed as exc:
            return _failure(started, f"could not connect: {_describe(exc)}")
        except h11.RemoteProtocolError as exc:
            return _failure(started, f"invalid HTTP response: {_describe(exc)}")
        except OSError as exc:
            return _failure(started, f"connection lost: {_describe(exc)}")
        status = response.status
        succeeded = 200 <= status < 300
        error = None
        if not succeeded:
            error = "redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
        retry_after = None if succeeded else parse_retry_after(_header(response, b"retry-after"))
        return AttemptResult(
            succeeded=succeeded,
            status_code=status,
            latency_ms=_elapsed_ms(started),
            error=error,
            response_body=clean_text(response.excerpt.decode("utf-8", errors="replace")),
            retry_after=retry_after,
        )

    async def _exchange(
        self, target: VettedTarget, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        """Reuse an idle connection to this very name if there is one, else dial a vetted
        address. A kept-alive connection the receiver had closed meanwhile is retried once."""
        connection = self._pool.take(target.key)
        while True:
            if connection is None:
                connection = await self._pool.open(target.key, target.addresses)
            try:
                response, reusable = await post(
                    connection,
                    target.target,
                    headers,
                    body,
                    excerpt_bytes=EXCERPT_BYTES,
                    max_read=MAX_READ_BYTES,
                )
            except (OSError, h11.RemoteProtocolError):
                connection.close()
                if not connection.reused:
                    raise
                connection = None
                continue
            except BaseException:
                connection.close()  # e.g. the deadline: its state is unknown
                raise
            if reusable:
                self._pool.give_back(connection)
            else:
                connection.close()
            return response


def _header(response: Response, name: bytes) -> str | None:
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
