"""Faults on the real parts: the database taken away in the middle of ingest (a TCP proxy
in front of the real PostgreSQL cuts every connection); the broker unreachable when work
is enqueued (the work waits for its sweep)."""

import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.stripe_sync.models import StripeEvent
from billing.stripe_sync.tasks import resend_stalled
from metering.models import ModelPriceOverride, UsageEvent
from metering.schemas import parse_event_batch
from metering.services import events_ingest, price_override_save
from metering.tasks import price_unpriced_events_sweep
from tests.metering.factories import customer_create, event_payload
from tests.support.faults import TcpProxy, broker_down
from tests.support.polling import wait_for
from tests.support.stripe_webhooks import SECRET as WEBHOOK_SECRET
from tests.support.stripe_webhooks import deliver, event


@pytest.fixture
def database_through_proxy(transactional_db):
    """Point this process's database connection at a proxy to the real server (over TCP,
    or its unix socket when DATABASE_URL names one, as the embedded server's does)."""
    settings_dict = connection.settings_dict
    saved = settings_dict["HOST"], settings_dict["PORT"], dict(settings_dict["OPTIONS"])
    host = saved[0] or saved[2].get("host") or "127.0.0.1"
    proxy = TcpProxy(host, int(saved[1] or 5432))
    proxy.start()
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", proxy.port
    settings_dict["OPTIONS"].pop("host", None)
    try:
        yield proxy
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = saved[0], saved[1]
        settings_dict["OPTIONS"] = saved[2]
        proxy.stop()


def test_database_down_during_ingest_is_a_503_and_a_retry_stores_each_event_once(
    database_through_proxy, client_with_key
):
    customer_create(external_id="acme")
    first, second = event_payload("acme", id="e-1"), event_payload("acme", id="e-2")
    assert client_with_key.post("/v1/events", first, format="json").json()["accepted"] == 1

    database_through_proxy.stop()
    down = client_with_key.post("/v1/events", second, format="json")

    assert down.status_code == 503
    assert down.json()["errors"][0]["code"] == "database_unavailable"
    assert down["Retry-After"] == "5"

    database_through_proxy.start()
    retried = client_with_key.post("/v1/events", {"events": [first, second]}, format="json")

    assert retried.status_code == 200
    assert retried.json() == {"accepted": 1, "duplicates": 1, "conflicts": []}
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == ["e-1", "e-2"]


def test_broker_down_events_are_still_stored_and_acknowledged(client_with_key, db):
    customer_create(external_id="acme")

    with broker_down():
        response = client_with_key.post(
            "/v1/events", {"events": [event_payload("acme", id="e-1")]}, format="json"
        )

    assert response.json()["accepted"] == 1
    assert UsageEvent.objects.filter(event_id="e-1").exists()


def test_broker_down_a_price_override_is_saved_and_the_sweep_prices(
    db, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.WARNING, logger="common.queue")
    customer_create(external_id="acme")
    UsageEvent.objects.all().delete()
    at = timezone.now() - timedelta(hours=1)

    events_ingest(
        events=parse_event_batch(
            json.dumps(
                event_payload("acme", provider="self", model="llama", timestamp=at.isoformat())
            ).encode(),
            now=timezone.now(),
        )
    )
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        price_override_save(
            override=ModelPriceOverride(
                provider="self",
                model="llama",
                effective_from=at - timedelta(days=1),
                input_per_mtok=Decimal("1"),
                output_per_mtok=Decimal("2"),
            )
        )

    assert "price_unpriced_events" in caplog.text
    assert UsageEvent.objects.get().cost is None  # not priced yet
    price_unpriced_events_sweep()
    assert UsageEvent.objects.get().cost == Decimal("0.0014")  # 1000 x $1/M + 200 x $2/M


@pytest.mark.django_db(transaction=True)
def test_broker_down_a_stripe_webhook_is_stored_and_processed_once_it_is_back(
    celery_worker, settings
):
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]

    with broker_down():
        received = deliver(event("evt_1", "invoice.paid"))

    assert received.status_code == 200  # stored: Stripe need not retry
    assert StripeEvent.objects.get().processed_at is None
    assert resend_stalled(older_than_seconds=0) == 1
    wait_for(lambda: StripeEvent.objects.get().processed_at, what="the event", timeout=20)
    assert StripeEvent.objects.get().processed_at is not None
    assert resend_stalled(older_than_seconds=0) == 0
