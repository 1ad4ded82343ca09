"""Small request and response helpers."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message


def client_ip(request: Request) -> str:
    """The peer address (uvicorn's --proxy-headers makes it the real client behind a proxy)."""
    return request.client.host if request.client else "unknown"


def add_missing_headers(message: Message, headers: Mapping[str, str]) -> None:
    """Add ``headers`` to an ASGI ``http.response.start`` message, keeping any already set."""
    current = list(message.get("headers", []))
    present = {name.lower() for name, _ in current}
    for name, value in headers.items():
        if name.lower().encode() not in present:
            current.append((name.lower().encode(), value.encode()))
    message["headers"] = current


async def no_store(response: Response) -> None:
    """A route dependency for answers that show a secret once: no cache keeps a copy."""
    response.headers["Cache-Control"] = "no-store"
