"""Webhooks the sandbox posts back, as Meta would: message and status events, signed.

Each body is signed ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``.
Status callbacks run as tracked background tasks, cancelled by ``aclose()``. Like Meta, the
sandbox tries a status again when the receiver can't be reached or answers 429/5xx; a post
that still fails is logged, never raised, as a webhook that doesn't land never fails a send.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from wacrm.settings import Settings

logger = logging.getLogger(__name__)

# Meta's entry[].id is the WABA id; the sandbox has no real one, so a fixed fictional one.
SANDBOX_WABA_ID = "100000000000001"
STATUSES = ("sent", "delivered", "read")
# Meta retries for days; the sandbox a few times, within a minute.
RETRY_DELAYS_SECONDS = (1.0, 5.0, 20.0)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def display_number(phone_number_id: str) -> str:
    """A stable fictional display number (555 range) for a number the sandbox never saw."""
    return f"1555{int(phone_number_id) % 10**7:07d}"


def envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    """A ``messages`` webhook body around ``value`` (its contacts/messages/statuses)."""
    metadata = {
        "display_phone_number": display_number(phone_number_id),
        "phone_number_id": phone_number_id,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": SANDBOX_WABA_ID,
                "changes": [
                    {
                        "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def inbound_event(
    phone_number_id: str, wa_id: str, name: str, message: dict[str, Any]
) -> dict[str, Any]:
    """A customer's message, with their profile name."""
    contacts = [{"profile": {"name": name}, "wa_id": wa_id}]
    return envelope(phone_number_id, {"contacts": contacts, "messages": [message]})


@dataclass(frozen=True)
class Billing:
    """How Meta would price the message: a template's category, or free service replies."""

    category: str

    @classmethod
    def for_send(cls, template_category: str | None) -> Billing:
        return cls(template_category or "service")

    def conversation(self, phone_number_id: str, wa_id: str, now: float) -> dict[str, Any]:
        seed = f"{phone_number_id}:{wa_id}:{self.category}".encode()
        return {
            "id": hashlib.sha256(seed).hexdigest()[:32],
            "expiration_timestamp": str(int(now) + 24 * 3600),
            "origin": {"type": self.category},
        }

    def pricing(self) -> dict[str, Any]:
        free = self.category == "service"
        return {
            "billable": not free,
            "pricing_model": "PMP",
            "type": "free_customer_service" if free else "regular",
            "category": self.category,
        }


def status_event(
    phone_number_id: str, wamid: str, wa_id: str, status: str, at: float, billing: Billing
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(at)),
        "recipient_id": wa_id,
    }
    if status != "read":
        item["conversation"] = billing.conversation(phone_number_id, wa_id, at)
        item["pricing"] = billing.pricing()
    return envelope(phone_number_id, {"statuses": [item]})


@dataclass(frozen=True)
class PostOutcome:
    status: int | None
    error: str | None = None


class WebhookPoster:
    """Posts signed webhooks to ``settings.sandbox_webhook_url`` through one shared client."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._url = settings.sandbox_webhook_url
        self._secret = settings.sandbox_app_secret
        self._delay = settings.sandbox_status_delay_seconds
        self._duplicate = settings.sandbox_duplicate_statuses
        self._reorder = settings.sandbox_reorder_statuses
        # A burst of sends queues its callbacks for a connection rather than dropping them.
        timeout = httpx.Timeout(settings.whatsapp_timeout_seconds, pool=None)
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def post(self, payload: dict[str, Any]) -> PostOutcome:
        """Sign and post one webhook body; failures are logged and returned, not raised."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(self._secret, body),
            "User-Agent": "facebookexternalua",
        }
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("sandbox webhook to %s failed: %r", self._url, exc)
            return PostOutcome(None, str(exc) or type(exc).__name__)
        if not response.is_success:
            logger.warning("sandbox webhook to %s answered %s", self._url, response.status_code)
        return PostOutcome(response.status_code)

    def schedule_statuses(
        self, phone_number_id: str, wamid: str, wa_id: str, billing: Billing
    ) -> None:
        """Post sent → delivered → read for a send, in the background."""
        if self._closed:
            return
        task = asyncio.create_task(self._statuses(phone_number_id, wamid, wa_id, billing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _statuses(
        self, phone_number_id: str, wamid: str, wa_id: str, billing: Billing
    ) -> None:
        start = time.time()
        # Timestamps follow the real sequence even when the posts arrive reordered.
        events = [
            status_event(phone_number_id, wamid, wa_id, name, start + i * self._delay, billing)
            for i, name in enumerate(STATUSES)
        ]
        if self._reorder:
            events.reverse()
        for event in events:
            # Waiting first also lets the sender store the wamid before `sent` arrives.
            await asyncio.sleep(self._delay)
            for _ in range(2 if self._duplicate else 1):
                await self._post_until_received(event)

    async def _post_until_received(self, payload: dict[str, Any]) -> None:
        for delay in (*RETRY_DELAYS_SECONDS, None):
            outcome = await self.post(payload)
            retry = outcome.status is None or outcome.status == 429 or outcome.status >= 500
            if not retry or delay is None:
                return
            await asyncio.sleep(delay)

    @property
    def pending(self) -> int:
        """Status sequences still running."""
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel pending status callbacks and close the HTTP client."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()
