"""Prometheus metrics of every process, and their exposition.

Labels are bounded by construction: routes are templates (``/api/v1/contacts/{contact_id}``),
never raw paths; methods outside the standard set share ``OTHER``; auth failures carry a
reason category, never a key. Under ``wacrm serve --workers N`` the processes write their
samples to ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any one of them sums them all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"
OTHER_METHOD = "OTHER"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# `_created` timestamps would double the output and say little here.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    "wacrm_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "wacrm_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
)
AUTH_FAILURES = Counter(
    "wacrm_auth_failures",
    "Refused credentials, by credential kind (api_key, session, login, metrics_token) and "
    "reason (missing, malformed, unknown, revoked, expired, wrong, csrf, no_membership, "
    "rate_limited).",
    ["credential", "reason"],
)
WHATSAPP_SENDS = Counter(
    "wacrm_whatsapp_sends",
    "Calls to the WhatsApp Cloud API to send a message, by outcome "
    "(sent, failed, retrying, unknown).",
    ["outcome"],
)
WEBHOOK_ATTEMPTS = Counter(
    "wacrm_webhook_delivery_attempts",
    "Outbound webhook delivery attempts, by outcome "
    "(succeeded, failed, gone, internal_error, endpoint_disabled).",
    ["outcome"],
)
BROADCAST_RECIPIENTS = Counter(
    "wacrm_broadcast_recipients_settled",
    "Broadcast recipients settled by workers, by status (sent, failed, unknown).",
    ["status"],
)
BROADCASTS_COMPLETED = Counter("wacrm_broadcasts_completed", "Broadcasts that completed.")
WORKER_JOB_ITEMS = Counter(
    "wacrm_worker_job_items",
    "Items taken by worker jobs (payloads, sends, recipients, deliveries), by job.",
    ["job"],
)
WORKER_JOB_ERRORS = Counter(
    "wacrm_worker_job_errors", "Worker job runs that raised an error, by job.", ["job"]
)


def http_method_label(method: str) -> str:
    return method if method in HTTP_METHODS else OTHER_METHOD


def auth_failed(credential: str, reason: str) -> None:
    AUTH_FAILURES.labels(credential=credential, reason=reason).inc()


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def process_registry() -> CollectorRegistry:
    """This process's metrics, or those of all processes sharing the multiprocess directory."""
    if not is_multiprocess():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@contextmanager
def multiprocess_directory(processes: int) -> Iterator[None]:
    """For several processes: a fresh, private directory where each writes its samples
    (the processes inherit it through the environment, before they import the client).
    Fresh on every start, because samples left by an earlier run would be summed in."""
    if processes <= 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="wacrm-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def serve_metrics(host: str, port: int) -> None:
    """This process's metrics on their own port, from a daemon thread (``wacrm worker``)."""
    start_http_server(port, addr=host, registry=process_registry())


class _ScrapeTimeGauges:
    """Values read at scrape time (queue depths): facts about the database, not a process,
    so they are exposed as read and never summed across processes."""

    def __init__(self, queue_depths: Mapping[str, int] | None) -> None:
        self._depths = queue_depths

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "wacrm_database_up", "1 if the database answered the queue-depth query of this scrape."
        )
        up.add_metric([], 0 if self._depths is None else 1)
        yield up
        if self._depths is None:
            return
        depth = GaugeMetricFamily(
            "wacrm_queue_depth",
            "Work waiting in the database, read at scrape time: webhook_deliveries_due, "
            "broadcast_recipients_pending, inbound_payloads_pending.",
            labels=["queue"],
        )
        for queue, count in sorted(self._depths.items()):
            depth.add_metric([queue], count)
        yield depth


def exposition(queue_depths: Mapping[str, int] | None) -> bytes:
    """The text exposition format: process metrics, then the scrape-time gauges."""
    scraped = CollectorRegistry()
    scraped.register(_ScrapeTimeGauges(queue_depths))
    return generate_latest(process_registry()) + generate_latest(scraped)
