"""A dependency that accepts connections and never answers (a Redis stopped with SIGSTOP)
costs a caller a bounded wait, once, and never an answer: health says 503 within its
budget, saving a price override and closing periods go on without the broker (the sweeps
send the work later), ingest does not touch it, and the rate limits count per process
while the shared cache is frozen.

Before: each of these waited forever on the frozen server (kombu's and redis-py's
sockets had no timeout), pinning the worker that served it.
"""

import logging
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.management import call_command

from api import health, throttling
from billing.invoicing.models import Invoice
from billing.plans.models import Subscription
from metering.models import ModelPriceOverride, UsageEvent
from tests.billing.factories import plan_load
from tests.metering.factories import OVERRIDE, customer_create, event_payload
from tests.support.faults import frozen_redis, publishing_to

# The wait a test allows beyond a budget: the machine is shared and its speed varies.
SLACK_SECONDS = 1.5


@pytest.fixture
def frozen_broker():
    with frozen_redis() as url, publishing_to(url):
        yield url


def budget() -> float:
    return settings.CELERY_BROKER_TIMEOUT_SECONDS


def timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def test_health_answers_503_within_its_budget_when_the_broker_is_frozen(client, frozen_broker, db):
    response, waited = timed(lambda: client.get("/v1/health"))

    assert response.status_code == 503
    assert response.json()["broker"] == {"ok": False, "error": "Timeout"}
    assert response.json()["database"] == {"ok": True}
    assert waited < budget() + SLACK_SECONDS
    # The probe still waiting on the broker is not joined by a second one: the next
    # health check says so at once.
    again, waited_again = timed(lambda: client.get("/v1/health"))
    assert again.status_code == 503
    assert waited_again < 0.5
    # Nor does the next check wait when the probe has just given up by itself (its socket
    # timeout equals the budget): the failure stands for one more budget. Before, that
    # check started a new probe and waited the whole budget again.
    health._broker_probe.join()
    after, waited_after = timed(lambda: client.get("/v1/health"))
    assert after.status_code == 503
    assert waited_after < 0.5


def test_a_frozen_broker_reads_timeout_even_when_the_probe_gives_up_first(frozen_broker, db):
    """The probe's socket timeout equals the health budget, so either may end first; a
    caller that waits longer than the probe sees the probe's own failure, which is a
    timeout too (before, it read "OperationalError", kombu's wrapper of it)."""
    if health._broker_probe is not None:
        health._broker_probe.join()  # (no probe of an earlier test answers for this one)

    answer = health.broker_status(budget=budget() + 3)

    assert answer == {"ok": False, "error": "Timeout"}


def test_ingest_does_not_touch_a_frozen_broker(
    client_with_key, frozen_broker, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.WARNING, logger="common.queue")
    customer_create(external_id="acme")

    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        response, waited = timed(
            lambda: client_with_key.post(
                "/v1/events", event_payload("acme", id="e-1"), format="json"
            )
        )

    assert response.status_code == 200
    assert UsageEvent.objects.filter(event_id="e-1").exists()
    assert after_commit == [] and caplog.records == []  # nothing sent, nothing failed
    assert waited < SLACK_SECONDS


def test_a_price_override_is_saved_with_the_broker_frozen_waiting_once(
    client_with_key, frozen_broker, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.WARNING, logger="common.queue")

    with django_capture_on_commit_callbacks(execute=True):
        saved, waited = timed(
            lambda: client_with_key.post("/v1/price-overrides", OVERRIDE, format="json")
        )
    with django_capture_on_commit_callbacks(execute=True):
        another, waited_again = timed(
            lambda: client_with_key.post(
                "/v1/price-overrides", {**OVERRIDE, "model": "llama-3-70b"}, format="json"
            )
        )

    assert (saved.status_code, another.status_code) == (201, 201)
    assert ModelPriceOverride.objects.count() == 2
    assert waited < budget() + SLACK_SECONDS  # one reply waited for, bounded
    assert waited_again < SLACK_SECONDS  # the broker failed moments ago: not tried
    assert [r.getMessage().split(" not enqueued, ")[1][:25] for r in caplog.records] == [
        "the broker is unreachable",
        "the broker was unreachabl",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_close_with_the_broker_frozen_tries_it_once_and_invoices_everyone(
    frozen_broker, stripe, caplog
):
    """Each invoice's push and each chunk's breakdown are enqueued after the close; with
    the broker frozen the first attempt waits out the timeout and the rest do not wait
    (they were ~0.6 s each in Celery's publish retries, hours for 10,000 customers)."""
    caplog.set_level(logging.WARNING, logger="common.queue")
    version = plan_load("support-ai", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    for n in range(5):
        Subscription.objects.create(
            customer=customer_create(external_id=f"c-{n}"),
            plan=version.plan,
            started_at=datetime(2026, 10, 1, tzinfo=UTC),
        )

    call_command("close_periods", "--as-of", "2026-11-01T02:00:00+00:00")

    assert Invoice.objects.count() == 5
    waits = [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]
    skips = [r.getMessage() for r in caplog.records if "moments ago" in r.getMessage()]
    assert len(waits) == 1
    assert len(skips) == 5  # 5 pushes and 1 breakdown, less the one that waited
    assert Invoice.objects.filter(push_state="pending").count() == 5  # the sweep sends them


@pytest.fixture
def frozen_cache(settings):
    with frozen_redis() as url:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url.replace("redis+socket://", "unix://"),
                "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
            }
        }
        yield
    throttling._local_counters.clear()


def test_rate_limits_count_per_process_while_the_cache_is_frozen(
    client_with_key, frozen_cache, settings
):
    settings.API_KEY_RATE_LIMIT = "2/m"
    customer_create(external_id="acme")

    answers = []
    for n in range(3):
        response, waited = timed(
            lambda n=n: client_with_key.post(
                "/v1/events", event_payload("acme", id=f"e-{n}"), format="json"
            )
        )
        answers.append((response.status_code, waited < 0.5 + SLACK_SECONDS))

    # The first request waits out the cache's timeout once; the limit still holds,
    # counted in the process.
    assert answers == [(200, True), (200, True), (429, True)]
