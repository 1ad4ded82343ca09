"""Per-request telemetry: the request id, the access-log line and the HTTP metrics.

It is the outermost middleware, so it also sees what is answered before routing (413 for
an oversized body, 404 for an unknown path); those have no route and share one label.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wacrm.telemetry.context import REQUEST_ID_HEADER, end_request, start_request
from wacrm.telemetry.logs import ACCESS_LOGGER
from wacrm.telemetry.metrics import (
    HTTP_DURATION,
    HTTP_REQUESTS,
    UNMATCHED_ROUTE,
    http_method_label,
)

access_log = logging.getLogger(ACCESS_LOGGER)
# Probes and scrapes arrive every few seconds: their lines are debug, not info.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context, token = start_request(_header(scope, b"x-request-id"))
        # Read back by the 500 handler, which answers from outside this middleware.
        scope.setdefault("state", {})["request_id"] = context.request_id
        root_path = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = context.request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The context stays set: the 500 handler logs from outside this middleware.
            _record(scope, root_path, status, time.perf_counter() - started)
            raise
        _record(scope, root_path, status, time.perf_counter() - started)
        end_request(token)


def _record(scope: Scope, root_path: str, status: int, seconds: float) -> None:
    """Count the request and write its access-log line."""
    method = http_method_label(scope["method"])
    route = route_template(scope, root_path)
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route, str(status)).observe(seconds)
    duration_ms = round(seconds * 1000, 1)
    access_log.log(
        logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
        "%s %s %s %.1fms",
        method,
        route,
        status,
        duration_ms,
        extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms},
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


_templates: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def route_template(scope: Scope, root_path: str) -> str:
    """The matched route's path template, with the prefix of any mount it sits under."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    app = scope.get("app")  # the innermost application that routed the request
    templates = _templates.get(app) if app is not None else None
    if templates is None and app is not None:
        templates = _templates[app] = _route_templates(app)
    path = (templates or {}).get(id(route)) or getattr(route, "path_format", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    return str(scope.get("root_path", ""))[len(root_path) :] + path


def _route_templates(app: Any) -> dict[int, str]:
    """Route object -> full template. Routers included with a prefix keep their routes'
    own (unprefixed) paths in recent FastAPI; its route contexts know the full one."""
    routes = getattr(app, "routes", [])
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes with the full path
        return {id(route): route.path_format for route in routes if hasattr(route, "path_format")}
    return {
        id(context.original_route): context.path_format
        for context in iter_route_contexts(routes)
        if context.path_format
    }
