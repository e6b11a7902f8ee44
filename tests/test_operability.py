"""Operability: Prometheus metrics at /metrics (protected), a request id on every
response and log line, JSON log lines."""

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from prometheus_client import REGISTRY

from alerts.tasks import evaluate_alerts
from billing.stripe_sync import stripe_api
from billing.stripe_sync.stripe_api import StripeRetryable
from metering.models import UsageEvent
from tests.metering.factories import customer_create, event_payload
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_need_a_token_or_a_staff_login(client, settings):
    settings.METRICS_TOKEN = "scrape-me"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert scraped.status_code == 200
    assert b"payback_events_total" in scraped.content
    User.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    client.force_login(User.objects.get(username="ops"))
    assert client.get("/metrics").status_code == 200


def test_ingest_counts_accepted_duplicate_conflicting_and_unpriced_events(client_with_key):
    customer_create(external_id="acme")
    before = {
        result: sample("payback_events_total", result=result)
        for result in ("accepted", "duplicate", "conflict")
    }
    unpriced_before = sample("payback_unpriced_events_total")
    event = event_payload("acme", id="e-1", provider="acme-ai", model="secret-model")

    client_with_key.post("/v1/events", event, format="json")
    client_with_key.post("/v1/events", event, format="json")  # duplicate
    client_with_key.post("/v1/events", {**event, "input_tokens": 5}, format="json")  # conflict

    assert sample("payback_events_total", result="accepted") - before["accepted"] == 1
    assert sample("payback_events_total", result="duplicate") - before["duplicate"] == 1
    assert sample("payback_events_total", result="conflict") - before["conflict"] == 1
    assert sample("payback_unpriced_events_total") - unpriced_before == 1
    assert (
        sample(
            "payback_http_request_duration_seconds_count",
            method="POST",
            route="v1/events",
            status="200",
        )
        >= 3
    )


def test_stripe_errors_are_counted(stripe):
    before = sample("payback_stripe_errors_total", kind="retryable")
    stripe.fail_next(status=500)

    with pytest.raises(StripeRetryable):
        stripe_api.customer_create(customer_pk=1, external_id="acme", name="Acme", email="")

    assert sample("payback_stripe_errors_total", kind="retryable") - before == 1


@pytest.mark.django_db(transaction=True)
def test_task_durations_are_measured(celery_worker):
    before = sample(
        "payback_task_duration_seconds_count", task="alerts.tasks.evaluate_alerts", state="SUCCESS"
    )

    evaluate_alerts.delay()

    def measured() -> float | None:
        count = sample(
            "payback_task_duration_seconds_count",
            task="alerts.tasks.evaluate_alerts",
            state="SUCCESS",
        )
        return count if count > before else None

    after = wait_for(measured, what="the task's duration sample", timeout=20)

    assert after - before == 1


def test_every_response_carries_a_request_id(client):
    given = client.get("/v1/health", HTTP_X_REQUEST_ID="abc-123")
    made = client.get("/v1/health")
    hostile = client.get("/v1/health", HTTP_X_REQUEST_ID="x" * 500)

    assert given["X-Request-ID"] == "abc-123"
    assert len(made["X-Request-ID"]) == 32
    assert hostile["X-Request-ID"] != "x" * 500


def test_log_lines_are_json_with_the_request_id(client_with_key):
    """The production log configuration, pointed at a buffer for the test."""
    stream = io.StringIO()
    config = json.loads(json.dumps(django_settings.LOGGING))
    config["handlers"]["console"].update(formatter="json", stream=stream)
    config["handlers"]["console"]["stream"] = stream
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logging.config.dictConfig({**config, "root": {"handlers": ["console"], "level": "INFO"}})
        customer_create(external_id="acme")
        event = event_payload("acme", id="e-1")
        client_with_key.post("/v1/events", event, format="json")
        response = client_with_key.post(
            "/v1/events", {**event, "input_tokens": 5}, format="json", HTTP_X_REQUEST_ID="req-42"
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    conflict = next(line for line in lines if "ingest conflicts" in line["message"])
    assert conflict["request_id"] == response["X-Request-ID"] == "req-42"
    assert {"time", "level", "logger", "message"} <= set(conflict)
    assert conflict["level"] == "INFO"


def test_single_events_take_the_api_pipeline_with_what_they_use(client_with_key):
    """POST /v1/events skips the admin's middleware (config/pipeline.py) and keeps the
    request id, the security headers, and its route's timing."""
    customer_create(external_id="acme")
    before = sample(
        "payback_http_request_duration_seconds_count",
        method="POST", route="v1/events", status="200",
    )  # fmt: skip

    event = client_with_key.post(
        "/v1/events", event_payload("acme", id="e-1"), format="json", HTTP_X_REQUEST_ID="r-1"
    )
    plans = client_with_key.get("/v1/plans")

    assert event.status_code == 200
    assert event["X-Request-ID"] == "r-1"
    assert event["X-Content-Type-Options"] == "nosniff"
    # Every answer, ingest's included, carries the same security headers.
    assert event["X-Frame-Options"] == plans["X-Frame-Options"] == "DENY"
    after = sample(
        "payback_http_request_duration_seconds_count",
        method="POST", route="v1/events", status="200",
    )  # fmt: skip
    assert after - before == 1


def test_a_single_event_to_a_host_not_allowed_is_refused_as_on_other_paths(client_with_key):
    customer_create(external_id="acme")

    event = client_with_key.post(
        "/v1/events", event_payload("acme", id="e-1"), format="json", HTTP_HOST="evil.example"
    )
    plans = client_with_key.get("/v1/plans", HTTP_HOST="evil.example")

    assert (event.status_code, plans.status_code) == (400, 400)
    assert not UsageEvent.objects.exists()
