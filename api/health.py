"""GET /v1/health: is the service able to take work? 200 when the database and the
broker answer, 503 (with which one failed) when either does not."""

import threading
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.backends.base.base import BaseDatabaseWrapper
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.backoff import Backoff
from config.celery import app as celery_app


def database_status(db: BaseDatabaseWrapper = connection) -> dict[str, Any]:
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # any failure means "not ready"; the message says which
        return {"ok": False, "error": type(exc).__name__}


def _probe_broker(outcome: dict[str, Any]) -> None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0)  # one attempt; the socket timeouts bound it
        outcome.update(ok=True)
    except Exception as exc:  # as above
        outcome.update(ok=False, error="Timeout" if _timed_out(exc) else type(exc).__name__)


def _timed_out(exc: BaseException) -> bool:
    """Whether a socket timeout is behind the failure. The probe's socket timeout equals
    the caller's budget, so a broker that never answers ends the probe and the caller's
    wait at about the same moment: either way the answer is "Timeout" (kombu wraps
    redis-py's timeout, which wraps the socket's, in an OperationalError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# The probe still running, when the last one outlived its budget: a frozen broker costs
# at most one waiting thread per process, not one per health request.
_broker_probe: threading.Thread | None = None
_broker_probe_lock = threading.Lock()
# Per broker URL, a failed answer stands for one more budget. The probe's own socket
# timeout equals the budget, so it often ends just after the caller gave up on it; without
# this the next check would start a new probe and wait again.
_broker_failures = Backoff()


def broker_status(budget: float | None = None) -> dict[str, Any]:
    """The broker's answer within `budget` seconds (CELERY_BROKER_TIMEOUT_SECONDS), or
    "Timeout": the probe runs in a thread, so whatever the broker does (refuse, accept and
    never answer, answer a byte at a time) the caller waits no longer than the budget. A
    failure is the answer, without a new probe, for one more budget after it."""
    global _broker_probe
    budget = settings.CELERY_BROKER_TIMEOUT_SECONDS if budget is None else budget
    broker = str(celery_app.conf.broker_write_url or celery_app.conf.broker_url)
    outcome: dict[str, Any] = {}
    with _broker_probe_lock:
        if _broker_probe is not None and _broker_probe.is_alive():
            return {"ok": False, "error": "Timeout"}
        if _broker_failures.active(broker):
            return {"ok": False, "error": _broker_failures.why(broker)}
        probe = threading.Thread(target=_probe_broker, args=(outcome,), daemon=True)
        _broker_probe = probe
        probe.start()
    probe.join(budget)
    answer = {"ok": False, "error": "Timeout"} if probe.is_alive() else dict(outcome)
    if not answer["ok"]:
        with _broker_probe_lock:
            _broker_failures.failed(broker, budget, why=answer["error"])
    return answer


class HealthStatus(models.TextChoices):
    OK = "ok"
    UNAVAILABLE = "unavailable"


_Check = inline_serializer(
    "HealthCheck",
    {"ok": serializers.BooleanField(), "error": serializers.CharField(required=False)},
)
_Health = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(HealthStatus.choices),
        "database": _Check,
        "broker": _Check,
    },
)


class HealthApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        summary="Liveness and readiness",
        responses={200: _Health, 503: _Health},
        auth=[],
    )
    def get(self, request: Request) -> Response:
        checks = {"database": database_status(), "broker": broker_status()}
        healthy = all(check["ok"] for check in checks.values())
        return Response(
            {"status": HealthStatus.OK if healthy else HealthStatus.UNAVAILABLE, **checks},
            status=200 if healthy else 503,
        )
