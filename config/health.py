"""GET /v1/health: is the service able to take work? 200 when the database and the
broker answer, 503 (with which one failed) when either does not."""

from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.celery import app as celery_app

_CHECK_TIMEOUT_SECONDS = 2


def database_status(db: BaseDatabaseWrapper = connection) -> dict[str, Any]:
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # any failure means "not ready"; the message says which
        return {"ok": False, "error": type(exc).__name__}


def broker_status() -> dict[str, Any]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=_CHECK_TIMEOUT_SECONDS)
        return {"ok": True}
    except Exception as exc:  # as above
        return {"ok": False, "error": type(exc).__name__}


_Check = inline_serializer(
    "HealthCheck",
    {"ok": serializers.BooleanField(), "error": serializers.CharField(required=False)},
)
_Health = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(["ok", "unavailable"]),
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
            {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
        )
