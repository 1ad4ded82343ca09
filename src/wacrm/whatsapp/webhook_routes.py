"""``/webhooks/whatsapp``: where Meta (or the sandbox) subscribes and delivers events."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data
from wacrm.kit.openapi import error_responses
from wacrm.settings import Settings
from wacrm.whatsapp import inbound
from wacrm.whatsapp.signature import SIGNATURE_HEADER
from wacrm.whatsapp.tasks import inbound_pipeline

router = APIRouter(prefix="/webhooks/whatsapp", tags=["whatsapp webhook"])


class WebhookReceipt(BaseModel):
    received: bool = Field(description="Always true: the payload is stored")
    payload_id: uuid.UUID = Field(description="The stored raw payload, for tracing")


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error responses of a plain-text route: they stay JSON envelopes (the POST route below
    puts ErrorEnvelope in the schema components)."""
    return {
        status: {
            "description": spec["description"],
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
            },
        }
        for status, spec in error_responses(*statuses).items()
    }


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.get(
    "",
    response_class=PlainTextResponse,
    responses={200: {"description": "The challenge, verbatim"}, **_json_errors(403)},
)
async def verify_subscription(
    request: Request,
    session: DbSession,
    mode: Annotated[str | None, Query(alias="hub.mode", description="Always `subscribe`")] = None,
    token: Annotated[
        str | None, Query(alias="hub.verify_token", description="The verify token you set")
    ] = None,
    challenge: Annotated[
        str | None, Query(alias="hub.challenge", description="Echoed back as plain text")
    ] = None,
) -> PlainTextResponse:
    """Meta's subscription handshake: echoes `hub.challenge` as plain text when
    `hub.verify_token` is the deployment's or one of the numbers' verify token; else 403.
    """
    echoed = await inbound.verify_subscription(
        session, _settings(request), mode=mode, token=token, challenge=challenge
    )
    # Only a right token gets here, but the echo is still caller-chosen text: never let a
    # browser sniff it into HTML, and never cache it.
    return PlainTextResponse(
        echoed, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    )


@router.post("", response_model=Data[WebhookReceipt], responses=error_responses(401))
async def receive_events(request: Request) -> Data[WebhookReceipt]:
    """Messages and delivery statuses from Meta, signed with `X-Hub-Signature-256`.

    A bad or missing signature is a 401 and nothing is stored. A signed payload is stored
    and processed before this answers 200 (posts arriving together are processed
    together); one that cannot be processed now is stored and retried by the worker, so
    Meta is never asked to send it again.
    """
    body = await request.body()
    pipeline = inbound_pipeline(request.app)
    payload_id = await pipeline.receive(body, request.headers.get(SIGNATURE_HEADER))
    return Data(data=WebhookReceipt(received=True, payload_id=payload_id))
