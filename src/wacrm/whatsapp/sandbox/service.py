"""The simulator itself: accepts sends like the Cloud API and plays the customer's side."""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from wacrm.settings import Settings
from wacrm.whatsapp.sandbox.callbacks import Billing, WebhookPoster, display_number, inbound_event
from wacrm.whatsapp.sandbox.state import SandboxState, new_wamid
from wacrm.whatsapp.sandbox.templates import TemplateCatalog
from wacrm.whatsapp.sandbox.validation import GraphError, InvalidToken, check_send

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class InboundResult:
    wamid: str
    webhook_status: int | None
    webhook_error: str | None


class Sandbox:
    """One sandbox instance: its templates, windows, throughput and webhook poster."""

    def __init__(
        self, settings: Settings, *, webhook_transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.templates = TemplateCatalog(settings.sandbox_templates_file)
        self.state = SandboxState(settings.sandbox_messages_per_second)
        self.webhooks = WebhookPoster(settings, transport=webhook_transport)

    async def aclose(self) -> None:
        """Cancel pending status callbacks and close the webhook client."""
        await self.webhooks.aclose()

    def accept_send(
        self, phone_number_id: str, authorization: str | None, raw: bytes
    ) -> dict[str, Any]:
        """Meta's success body for a valid send, or a ``GraphError`` with Meta's code."""
        self.check_token(authorization)
        if not phone_number_id.isascii() or not phone_number_id.isdigit():
            raise GraphError(
                100,
                "Unsupported post request",
                f"Object with ID '{phone_number_id[:64]}' does not exist, cannot be loaded "
                "due to missing permissions, or does not support this operation.",
                subcode=33,
            )
        if len(raw) > MAX_BODY:
            raise GraphError(100, "Invalid parameter", "The request body is too large.")
        try:
            payload = json.loads(raw)
        except ValueError:
            raise GraphError(100, "Invalid parameter", "The request body is not JSON.") from None
        send = check_send(payload, self.templates)
        if not self.state.take_send_slot(phone_number_id):
            raise GraphError(
                130429, "Rate limit hit", "Cloud API message throughput has been reached."
            )
        if send.template is None and not self.state.window_open(phone_number_id, send.wa_id):
            raise GraphError(
                131047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )
        wamid = new_wamid(send.wa_id)
        self.state.accepted[send.wa_id] += 1
        category = send.template.category if send.template else None
        self.webhooks.schedule_statuses(
            phone_number_id, wamid, send.wa_id, Billing.for_send(category)
        )
        message: dict[str, str] = {"id": wamid}
        if send.template is not None:
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": send.to, "wa_id": send.wa_id}],
            "messages": [message],
        }

    def message_templates(self) -> dict[str, Any]:
        """Meta's ``message_templates`` answer: the approved list (the caller checked the token)."""
        templates = self.templates.all()
        return {"data": [t.as_meta_json(n) for n, t in enumerate(templates, start=1)]}

    def check_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        expected = self.settings.sandbox_access_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise InvalidToken()

    async def customer_writes(
        self,
        phone_number_id: str,
        wa_id: str,
        name: str,
        content: dict[str, Any],
        reply_to: str | None = None,
    ) -> InboundResult:
        """A customer message: opens the 24 h window, then posts Meta's message webhook."""
        self.state.record_inbound(phone_number_id, wa_id)
        wamid = new_wamid(wa_id)
        message: dict[str, Any] = {
            "from": wa_id,
            "id": wamid,
            "timestamp": str(int(time.time())),
            **content,
        }
        if reply_to:
            message["context"] = {"from": display_number(phone_number_id), "id": reply_to}
        outcome = await self.webhooks.post(inbound_event(phone_number_id, wa_id, name, message))
        return InboundResult(wamid, outcome.status, outcome.error)
