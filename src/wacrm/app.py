"""Builds the FastAPI application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from wacrm import __version__
from wacrm.accounts.routes import router as auth_router
from wacrm.api_keys.routes import session_router as api_keys_session_router
from wacrm.api_keys.routes import v1_router as api_keys_v1_router
from wacrm.audit.routes import router as audit_router
from wacrm.broadcasts.routes import router as broadcasts_router
from wacrm.contacts.routes import router as contacts_router
from wacrm.conversations.routes import router as conversations_router
from wacrm.dashboard.errors import error_page
from wacrm.dashboard.routes import router as dashboard_router
from wacrm.dashboard.routes import static_files as dashboard_static_files
from wacrm.dashboard.security import DashboardSecurityHeaders
from wacrm.dashboard.site import STATIC_PATH, is_dashboard_path
from wacrm.kit.body_limit import BodyLimitMiddleware
from wacrm.kit.db import Database, database_unavailable, first_line
from wacrm.kit.errors import AppError, ServiceUnavailable, error_envelope
from wacrm.kit.migrations import schema_head
from wacrm.kit.openapi import without_framework_422
from wacrm.kit.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from wacrm.messages.routes import router as messages_router
from wacrm.settings import Settings, get_settings
from wacrm.telemetry.context import REQUEST_ID_HEADER
from wacrm.telemetry.middleware import RequestTelemetryMiddleware
from wacrm.telemetry.routes import router as metrics_router
from wacrm.webhooks.routes import router as webhooks_router
from wacrm.whatsapp.client import CloudApiClient
from wacrm.whatsapp.sandbox import create_sandbox_app
from wacrm.whatsapp.webhook_routes import router as whatsapp_webhook_router
from wacrm.worker.jobs import WORKER_JOBS, worker_context
from wacrm.worker.runner import BackgroundWorker

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
}

API_DESCRIPTION = """
wacrm's public REST API. Authenticate with an API key:
`Authorization: Bearer wacrm_live_...`. Each endpoint names the one scope it needs.
Success bodies are `{"data": ...}`; errors are `{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What exists now (app, routes, settings, imported modules) lives as long as the
        # process: kept out of the collector, a collection under load scans only new objects.
        gc.freeze()
        worker = None
        if settings.worker_in_process:
            worker = BackgroundWorker(worker_context(app), WORKER_JOBS)
            worker.start()
        yield
        if worker is not None:
            await worker.stop()
        await app.state.whatsapp.aclose()
        if app.state.sandbox is not None:
            # Starlette never runs a mounted app's lifespan: close the sandbox ourselves.
            await app.state.sandbox.aclose()
        await app.state.database.dispose()

    # Swagger UI and ReDoc served from the package, not a CDN: the docs work offline.
    app = FastAPIOffline(
        title="wacrm",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = Database(settings.database_url, pool_size=settings.database_pool_size)
    app.state.rate_limiter = RateLimiter(settings.redis_url)
    app.state.whatsapp = CloudApiClient(settings)
    app.state.sandbox = None
    if settings.sandbox_enabled:
        sandbox_app = create_sandbox_app(settings)
        app.mount("/sandbox", sandbox_app)
        app.state.sandbox = sandbox_app.state.sandbox

    app.include_router(auth_router)
    app.include_router(api_keys_session_router)
    app.include_router(audit_router)
    app.include_router(api_keys_v1_router, prefix="/api/v1")
    app.include_router(contacts_router, prefix="/api/v1")
    app.include_router(conversations_router, prefix="/api/v1")
    app.include_router(whatsapp_webhook_router)
    app.include_router(messages_router, prefix="/api/v1")
    app.include_router(broadcasts_router, prefix="/api/v1")
    app.include_router(webhooks_router, prefix="/api/v1")
    app.include_router(dashboard_router)
    app.mount(STATIC_PATH, dashboard_static_files(), name="static")
    _add_health_routes(app)
    if settings.metrics_enabled:
        app.include_router(metrics_router)
    _add_error_handlers(app)
    _declare_400_not_422(app)

    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(DashboardSecurityHeaders)
    app.add_middleware(RequestTelemetryMiddleware)  # outermost: sees every answer
    return app


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], response_class=PlainTextResponse)
    async def healthz() -> str:
        """The process is up."""
        return "ok"

    @app.get("/readyz", tags=["operations"], response_class=PlainTextResponse)
    async def readyz(request: Request) -> PlainTextResponse:
        """The database answers and its schema is the one this code expects."""
        try:
            async with request.app.state.database.engine.connect() as connection:
                current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except Exception as exc:
            logger.warning("readiness check failed: %s", exc)
            return PlainTextResponse(
                "database unavailable or not migrated (run `wacrm db upgrade`)", status_code=503
            )
        if current != schema_head():
            return PlainTextResponse(
                f"database schema {current} is not {schema_head()}: run `wacrm db upgrade`",
                status_code=503,
            )
        return PlainTextResponse("ok")


def _declare_400_not_422(app: FastAPI) -> None:
    framework_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = without_framework_422(framework_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Any = None,
) -> Response:
    """The envelope for the API; an HTML page (or the login redirect) for dashboard paths."""
    if is_dashboard_path(request.url.path):
        return error_page(request, status, message, headers)
    body = error_envelope(code, message, details)
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return _error(request, exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if is_dashboard_path(request.url.path):
            # Pages validate only ids in their paths: one that does not parse names no page.
            return error_page(request, 404, "Page not found.")
        details = [
            {
                "field": ".".join(str(part) for part in error.get("loc", ())),
                "message": str(error.get("msg", "invalid")),
            }
            for error in exc.errors()
        ]
        return _error(request, 400, "bad_request", "The request is not valid.", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = {404: "No such route.", 405: "Method not allowed on this route."}.get(
            exc.status_code, str(exc.detail)
        )
        return _error(request, exc.status_code, code, message, headers=exc.headers)

    # Handled here rather than by the catch-all below, which re-raises to the server: uvicorn
    # would then drop the client's keep-alive connection with every error of an outage.
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(ConnectionError)
    async def database_error(request: Request, exc: Exception) -> Response:
        if not database_unavailable(exc):
            return await unexpected(request, exc)
        logger.warning("database unavailable: %s", first_line(exc))
        return await app_error(request, ServiceUnavailable("The database is unavailable; retry."))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", exc_info=exc)
        message = "Internal error; it has been logged."
        # This answer is sent from outside the telemetry middleware: echo the id here.
        request_id = getattr(request.state, "request_id", None)
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        try:
            return _error(request, 500, "internal", message, headers=headers)
        except Exception:
            logger.exception("the error page failed too")
            body = error_envelope("internal", message)
            return JSONResponse(body, status_code=500, headers=headers)
