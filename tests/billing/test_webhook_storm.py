"""A webhook storm: 1,000 signed deliveries of Stripe events for 60 invoices, each event
delivered several times, shuffled (a payment before its finalization), posted by eight
clients at once over HTTP to a live server while a real Celery worker processes them.
Each event is recorded and processed once; every invoice ends where Stripe left it."""

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from auditlog.models import LogEntry

from billing.invoicing.models import Invoice
from billing.invoicing.services import periods_close
from billing.plans.models import Subscription
from billing.stripe_sync.models import StripeEvent, StripeWebhookDelivery
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.polling import wait_for
from tests.support.stripe_webhooks import SECRET, event, signed

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
INVOICES = 60
DELIVERIES = 1000
# What Stripe sends for an invoice, by its index mod 3, and where it ends.
STORIES = [
    (["invoice.finalized", "invoice.paid"], "paid"),
    (["invoice.finalized", "invoice.voided"], "void"),
    (["invoice.finalized", "invoice.payment_failed", "invoice.payment_succeeded"], "paid"),
]


@pytest.mark.django_db(transaction=True)
def test_a_storm_of_duplicate_reordered_deliveries_processes_each_event_once(
    celery_worker, live_server, settings
):
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    # The storm comes from one address, faster than the endpoint's per-address limit
    # (tested on its own): here it is about processing each event once.
    settings.STRIPE_WEBHOOK_RATE_LIMIT = "0"
    plan = plan_load("p", base_fee="10").plan
    customers = [customer_create(external_id=f"c-{i}") for i in range(INVOICES)]
    for customer in customers:
        Subscription.objects.create(customer=customer, plan=plan, started_at=OCTOBER)
    periods_close(customer_ids=[c.pk for c in customers], period_start=OCTOBER, period_end=NOVEMBER)
    expected, events = {}, []
    for i, invoice in enumerate(Invoice.objects.order_by("pk")):
        Invoice.objects.filter(pk=invoice.pk).update(stripe_invoice_id=f"in_{i}")
        types, final = STORIES[i % 3]
        expected[invoice.pk] = final
        events += [event(f"evt_{i}_{n}", kind, f"in_{i}") for n, kind in enumerate(types)]
    rng = random.Random(7)  # noqa: S311 -- a reproducible shuffle, not a secret
    deliveries = events + [rng.choice(events) for _ in range(DELIVERIES - len(events))]
    rng.shuffle(deliveries)

    def post(payload: dict) -> int:
        body, signature = signed(payload)
        return requests.post(
            f"{live_server.url}/v1/webhooks/stripe",
            data=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as clients:
        statuses = list(clients.map(post, deliveries))

    assert statuses == [200] * DELIVERIES
    wait_for(
        lambda: not StripeEvent.objects.filter(processed_at__isnull=True).exists(),
        what="every event processed",
        timeout=60,
    )
    assert StripeWebhookDelivery.objects.filter(verified=True).count() == DELIVERIES
    assert StripeEvent.objects.count() == len(events)  # once per Stripe event id
    assert not StripeEvent.objects.filter(processed_at__isnull=True).exists()
    assert dict(Invoice.objects.values_list("pk", "status")) == expected
    # Statuses only moved forward: at most draft -> finalized -> final, ending at final.
    for invoice_id, final in expected.items():
        changes = [
            entry.changes_dict["status"]
            for entry in LogEntry.objects.get_for_objects(
                Invoice.objects.filter(pk=invoice_id)
            ).order_by("timestamp", "pk")
            if "status" in entry.changes_dict
        ]
        assert len(changes) <= 2, changes
        assert changes and changes[-1][1] == final, changes
