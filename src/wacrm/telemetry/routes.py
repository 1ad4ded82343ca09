"""``/metrics``: Prometheus text exposition (off with ``WACRM_METRICS_ENABLED=false``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from wacrm.kit.db import get_database
from wacrm.kit.openapi import error_responses
from wacrm.telemetry import service

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus metrics"},
        **error_responses(401),
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: HTTP traffic by route template, auth failures, WhatsApp sends,
    webhook deliveries, broadcast progress, worker jobs, and queue depths read now."""
    service.check_metrics_token(
        request.app.state.settings.metrics_token, request.headers.get("authorization")
    )
    return Response(await service.scrape(get_database(request)), media_type=CONTENT_TYPE_LATEST)
