"""Small request helpers."""

from __future__ import annotations

from starlette.requests import Request


def client_ip(request: Request) -> str:
    """The peer address (uvicorn's --proxy-headers makes it the real client behind a proxy)."""
    return request.client.host if request.client else "unknown"
