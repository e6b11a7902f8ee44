"""Prometheus metrics, served at /metrics (config/urls.py) to a scraper with
METRICS_TOKEN (`Authorization: Bearer <token>`) or a logged-in staff user.

With several processes (gunicorn workers, Celery workers) set PROMETHEUS_MULTIPROC_DIR
to one folder they all share, empty at start (`make run` does): each process writes its
samples there and /metrics sums them. Without it, a process reports its own.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

EVENTS = Counter(
    "payback_events_total",
    "Usage events posted, by what became of them",
    ["result"],  # accepted | duplicate | conflict
)
UNPRICED_EVENTS = Counter(
    "payback_unpriced_events_total", "Events stored without a price (no catalog entry, no override)"
)
OUTCOMES = Counter("payback_outcomes_total", "Outcome records posted, by result", ["result"])
REQUEST_SECONDS = Histogram(
    "payback_http_request_duration_seconds",
    "API request latency, by route",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TASK_SECONDS = Histogram(
    "payback_task_duration_seconds",
    "Celery task run time, by task and outcome",
    ["task", "state"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
TASK_FAILURES = Counter("payback_task_failures_total", "Celery tasks that raised", ["task"])
STRIPE_ERRORS = Counter(
    "payback_stripe_errors_total",
    "Stripe API calls that failed, by kind",
    ["kind"],  # retryable (5xx, 429, timeouts) | refused (other 4xx)
)


def batch_observed(counter: Counter, *, accepted: int, duplicates: int, conflicts: int) -> None:
    for result, count in (
        ("accepted", accepted),
        ("duplicate", duplicates),
        ("conflict", conflicts),
    ):
        if count:
            counter.labels(result).inc(count)


class RequestMetricsMiddleware:
    """Times every /v1 request by its route pattern (not its path: ids would explode the
    label set)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if request.path.startswith("/v1/") and match is not None:
            REQUEST_SECONDS.labels(request.method, match.route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer "), token)
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        return HttpResponse(
            "metrics need a METRICS_TOKEN bearer token or a staff login\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": "Bearer"},
        )
    registry: Any = DEFAULT_REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
