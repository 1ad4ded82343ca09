"""The sandbox's HTTP face: Meta's ``/messages`` endpoint, customer inbound, the templates.

``create_sandbox_app`` builds the app the main server mounts at ``/sandbox``;
``create_standalone_app`` serves the same app under the same prefix on its own, so
URLs are identical either way. A mounted app gets no lifespan of its own, so whoever
mounts it closes ``app.state.sandbox`` on shutdown (``create_standalone_app`` does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from wacrm.kit.errors import error_envelope
from wacrm.settings import Settings, get_settings
from wacrm.whatsapp.sandbox.schemas import InboundAnswer, InboundMessage
from wacrm.whatsapp.sandbox.service import Sandbox
from wacrm.whatsapp.sandbox.validation import GraphError

PREFIX = "/sandbox"


def create_sandbox_app(
    settings: Settings, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The sandbox app, routes relative to where it is mounted (``/sandbox``)."""
    sandbox = Sandbox(settings, webhook_transport=webhook_transport)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await sandbox.aclose()

    app = FastAPI(
        title="wacrm WhatsApp sandbox",
        description="A stand-in for Meta's WhatsApp Cloud API, for development and tests.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sandbox = sandbox

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(part) for part in error.get("loc", ())[1:]),
                "message": str(error.get("msg", "invalid")),
            }
            for error in exc.errors()
        ]
        body = error_envelope("bad_request", "The request is not valid.", details)
        return JSONResponse(body, status_code=400)

    @app.post("/{version}/{phone_number_id}/messages")
    async def send_message(version: str, phone_number_id: str, request: Request) -> JSONResponse:
        """Meta's send endpoint: the same checks, codes and success body."""
        try:
            answer = sandbox.accept_send(
                phone_number_id, request.headers.get("authorization"), await request.body()
            )
        except GraphError as refusal:
            return refusal.response()
        return JSONResponse(answer)

    @app.exception_handler(GraphError)
    async def refused(_request: Request, refusal: GraphError) -> JSONResponse:
        return refusal.response()

    def sandbox_token(request: Request) -> None:
        # A dependency: checked before the body is read or validated.
        sandbox.check_token(request.headers.get("authorization"))

    @app.get("/{version}/{waba_id}/message_templates", dependencies=[Depends(sandbox_token)])
    async def message_templates(version: str, waba_id: str) -> dict[str, Any]:
        """Meta's template list of a business account (every sandbox number shares one)."""
        return sandbox.message_templates()

    @app.post("/inbound", response_model=InboundAnswer, dependencies=[Depends(sandbox_token)])
    async def customer_writes(message: InboundMessage) -> InboundAnswer:
        """Simulate a customer writing in: opens the 24 h window and posts the signed webhook.

        Needs the sandbox's access token (``Authorization: Bearer``), as a send does: the
        sandbox signs what it posts, so an open door here would let anyone write into any
        sandbox number's inbox.
        """
        result = await sandbox.customer_writes(
            message.phone_number_id,
            message.wa_id,
            message.name,
            message.content(),
            message.reply_to,
        )
        return InboundAnswer(
            wamid=result.wamid,
            webhook_status=result.webhook_status,
            webhook_error=result.webhook_error,
        )

    @app.get("/sends", dependencies=[Depends(sandbox_token)])
    async def sends() -> dict[str, Any]:
        """How many sends this sandbox accepted, per customer number (Meta's ``wa_id``).
        Needs the sandbox's token: the numbers are the customers'."""
        accepted = sandbox.state.accepted
        return {"data": {"total": accepted.total(), "by_recipient": dict(accepted)}}

    @app.get("/templates")
    async def templates() -> dict[str, Any]:
        """The approved templates: name, language and the number of body parameters."""
        return {"data": [template.as_json() for template in sandbox.templates.all()]}

    return app


def create_standalone_app(settings: Settings | None = None) -> FastAPI:
    """The sandbox alone (``wacrm sandbox serve``), under the same ``/sandbox`` prefix."""
    sandbox_app = create_sandbox_app(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await sandbox_app.state.sandbox.aclose()

    app = FastAPI(title="wacrm WhatsApp sandbox", lifespan=lifespan, openapi_url=None)
    app.mount(PREFIX, sandbox_app)
    return app
