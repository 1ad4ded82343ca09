"""The Cloud API client: one pooled HTTP client, a per-number throttle, and Meta's errors typed.

Outcomes of ``send``:
- ``SendResult``: Meta accepted the message and gave its wamid.
- ``MetaError``: Meta (or whatever answered) refused it, or the request never left;
  ``retry_later`` tells a transient refusal (throughput, 5xx, no connection) from a final one.
- ``MetaOutcomeUnknown``: the request may have reached Meta but no usable answer came
  back. The message may have been sent, so it must never be re-sent automatically.
"""

from __future__ import annotations

import json
import logging
import re
import ssl as ssl_module
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from wacrm import __version__
from wacrm.channels.service import ChannelCredentials
from wacrm.settings import Settings
from wacrm.whatsapp.templates import ApprovedTemplate, approved_templates
from wacrm.whatsapp.throttle import number_throttle

logger = logging.getLogger(__name__)

_Route = tuple[URL | None, aiohttp.BasicAuth | None]  # the proxy to go through, its login

# A page waits for the template list: a slow Graph API must not hang it for long.
TEMPLATES_TIMEOUT_SECONDS = 5.0

# 2: service temporarily down; 4: app call-rate limit; 80007: WABA rate limit;
# 130429: number throughput; 131056: too many messages to one customer.
RETRY_LATER_CODES = frozenset({2, 4, 80007, 130429, 131056})


@dataclass(frozen=True)
class SendResult:
    """What Meta answers for an accepted message."""

    wamid: str
    wa_id: str | None


class CloudApiError(Exception):
    """Base of the client's failures."""


class MetaError(CloudApiError):
    """Meta refused the request (or the request never reached it)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        title: str | None = None,
        http_status: int | None = None,
        details: str | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        not_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.title = title
        self.http_status = http_status
        self.details = details
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.not_sent = not_sent

    @property
    def retry_later(self) -> bool:
        """True when the same request may succeed later: rate limits, 429/5xx, no connection."""
        if self.not_sent or self.code in RETRY_LATER_CODES:
            return True
        return self.http_status is not None and (self.http_status == 429 or self.http_status >= 500)

    def as_dict(self) -> dict[str, Any]:
        """The error as stored on a failed message (no secrets in it)."""
        return {
            "code": self.code,
            "subcode": self.subcode,
            "title": self.title,
            "message": self.message,
            "details": self.details,
            "http_status": self.http_status,
            "fbtrace_id": self.fbtrace_id,
        }

    def __str__(self) -> str:
        return f"Meta error {self.code}: {self.message}" if self.code else self.message


class MetaOutcomeUnknown(CloudApiError):
    """The request may have been delivered to Meta; whether the message was sent is unknown."""


# An idle connection is dropped well before a server would close it (uvicorn, serving the
# sandbox, closes after 5 s). Reusing one the server closes at that moment fails after the
# request went out: a send of unknown outcome, never retried.
KEEPALIVE_EXPIRY_SECONDS = 2.0
MAX_CONNECTIONS = 200  # a busy number: 1,000 messages/s at 200 ms per answer


class CloudApiClient:
    """Sends messages through the Cloud API (Meta's or the sandbox's: ``creds.base_url``).

    aiohttp, not httpx as elsewhere: a send is the hot path of a broadcast, and httpx cost
    0.9-1.5 ms of CPU per request against 0.15-0.25 ms for aiohttp (bench/README.md).
    """

    def __init__(self, settings: Settings, *, ssl: ssl_module.SSLContext | None = None) -> None:
        self._version = settings.graph_api_version
        self._timeout = settings.whatsapp_timeout_seconds
        self._ssl: ssl_module.SSLContext | bool = ssl if ssl is not None else True
        self._throttle = number_throttle(settings.whatsapp_messages_per_second, settings.redis_url)
        self._session: aiohttp.ClientSession | None = None
        self._routes: dict[str, _Route] = {}

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the event loop it was made in.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS,
                keepalive_timeout=KEEPALIVE_EXPIRY_SECONDS,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": f"wacrm/{__version__}"},
                # `connect` covers waiting for a pooled connection and connecting: when it
                # runs out nothing was sent. `sock_read` runs out after the request went out.
                timeout=aiohttp.ClientTimeout(connect=self._timeout, sock_read=self._timeout),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connection pool (on shutdown)."""
        if self._session is not None:
            await self._session.close()
        await self._throttle.aclose()

    def messages_url(self, creds: ChannelCredentials) -> str:
        return f"{creds.base_url.rstrip('/')}/{self._version}/{creds.phone_number_id}/messages"

    async def send(self, creds: ChannelCredentials, payload: dict[str, Any]) -> SendResult:
        """Send one message (a body from ``wacrm.whatsapp.payloads``), waiting for the throttle."""
        url = self.messages_url(creds)
        try:
            route = self._route(url)  # before the throttle: a bad URL takes no slot
        except ValueError as exc:
            raise _invalid_url(creds, exc) from exc
        await self._throttle.wait(creds.phone_number_id)
        headers = {"Authorization": f"Bearer {creds.access_token}"}
        try:
            answer = await self._post(url, payload, headers, route)
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise _invalid_url(creds, exc) from exc
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection was made, so nothing reached Meta: safe to try again.
            logger.warning("cloud api unreachable for %s: %r", creds.phone_number_id, exc)
            raise MetaError(f"Cloud API unreachable: {type(exc).__name__}", not_sent=True) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("cloud api outcome unknown for %s: %r", creds.phone_number_id, exc)
            raise MetaOutcomeUnknown(
                f"No answer from the Cloud API after sending ({type(exc).__name__}); "
                "the message may have been sent."
            ) from exc
        if answer.is_success:
            return _accepted(answer)
        error = _refusal(answer)
        logger.info(
            "cloud api refused a send from %s: http %s code %s",
            creds.phone_number_id,
            answer.status,
            error.code,
        )
        raise error

    async def _post(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], route: _Route
    ) -> _Answer:
        proxy, proxy_auth = route
        async with self._http().post(
            url,
            json=payload,
            headers=headers,
            allow_redirects=False,
            proxy=proxy,
            proxy_auth=proxy_auth,
        ) as response:
            return _Answer(response.status, await response.read())

    def _route(self, url: str) -> _Route:
        """How to reach this URL: through the proxy the environment names for it
        (HTTP(S)_PROXY, NO_PROXY), as httpx did, once ``_check_url`` passed it. Worked out
        once per URL (one per number), not per send; aiohttp's own ``trust_env`` would also
        read ~/.netrc on every request, in a thread. ``ValueError`` for an unusable URL."""
        route = self._routes.get(url)
        if route is None:
            parsed = URL(url)
            _check_url(parsed)
            try:
                route = get_env_proxy_for_url(parsed)
            except LookupError:  # no proxy for this host
                route = (None, None)
            self._routes[url] = route
        return route

    async def approved_templates(self, creds: ChannelCredentials) -> list[ApprovedTemplate]:
        """The approved templates of the number's business account (its first 200).

        Raises ``MetaError`` when the list cannot be had (refused, unreachable, timed out).
        """
        if not creds.waba_id:
            raise MetaError("No WhatsApp Business Account id is set for this number.")
        url = f"{creds.base_url.rstrip('/')}/{self._version}/{creds.waba_id}/message_templates"
        params = {"status": "APPROVED", "fields": "name,language,status,category,components"}
        try:
            proxy, proxy_auth = self._route(url)
            async with self._http().get(
                url,
                params={**params, "limit": "200"},
                headers={"Authorization": f"Bearer {creds.access_token}"},
                timeout=aiohttp.ClientTimeout(total=TEMPLATES_TIMEOUT_SECONDS),
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as response:
                answer = _Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise MetaError(f"Cloud API unreachable: {type(exc).__name__}", not_sent=True) from exc
        if not answer.is_success:
            raise _refusal(answer)
        return approved_templates(answer.json())


def _invalid_url(creds: ChannelCredentials, error: Exception) -> MetaError:
    """A misconfigured base URL: nothing was sent, and retrying cannot help."""
    return MetaError(f"Invalid Cloud API URL for {creds.phone_number_id}: {error}")


def _check_url(parsed: URL) -> None:
    """Raise ``ValueError`` for a URL aiohttp would fail on before sending anything, with an
    error of its own (not a ``ClientError``): credentials in it (they would clash with the
    bearer token), or a host name that cannot be encoded (an empty or 64+ character label)."""
    if parsed.user is not None or parsed.password is not None:
        raise ValueError("the URL must not carry credentials")
    if parsed.raw_host:
        try:
            parsed.raw_host.encode("idna")
        except UnicodeError as exc:
            raise ValueError(f"invalid host name: {exc}") from None


@dataclass(frozen=True)
class _Answer:
    """What the Cloud API answered: the status and the body, read in full."""

    status: int
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _accepted(answer: _Answer) -> SendResult:
    body = answer.json()
    wamid = _first(body, "messages", "id")
    if not wamid:
        # A 2xx means Meta took the message; without a wamid we can't track it, but it
        # may well be on its way, so this is not a failure to retry.
        raise MetaOutcomeUnknown(f"The Cloud API answered {answer.status} without a message id.")
    return SendResult(wamid=wamid, wa_id=_first(body, "contacts", "wa_id"))


def _first(body: Any, array: str, key: str) -> str | None:
    """``body[array][0][key]`` when it is a non-empty string."""
    items = body.get(array) if isinstance(body, dict) else None
    first = items[0] if isinstance(items, list) and items else None
    value = first.get(key) if isinstance(first, dict) else None
    return value if isinstance(value, str) and value else None


def _refusal(answer: _Answer) -> MetaError:
    body = answer.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        kind = "non-JSON" if body is None else "unexpected JSON"
        return MetaError(
            f"The Cloud API answered HTTP {answer.status} with a {kind} body.",
            http_status=answer.status,
        )
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    message = _text(error.get("message")) or f"Meta error {error['code']}"
    subcode = error.get("error_subcode")
    return MetaError(
        message,
        code=error["code"],
        subcode=subcode if isinstance(subcode, int) else None,
        title=_text(error.get("error_user_title")) or _title(message),
        http_status=answer.status,
        details=_text(details),
        error_type=_text(error.get("type")),
        fbtrace_id=_text(error.get("fbtrace_id")),
    )


def _title(message: str) -> str:
    # Meta puts the code's title in the message: "(#131047) Re-engagement message".
    return re.sub(r"^\(#\d+\)\s*", "", message)


def _text(value: object) -> str | None:
    return value[:2000] if isinstance(value, str) else None
