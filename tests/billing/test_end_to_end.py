"""The whole way, on the real parts: events and outcomes in through the API, a real
Celery worker closing the period and pushing it to Stripe (localstripe, through the real
`stripe` client), a signed webhook bringing the payment back."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.invoicing.models import Invoice
from billing.invoicing.selectors import periods_due
from billing.invoicing.tasks import close_due_periods
from billing.plans.models import Subscription
from tests.billing.factories import plan_load
from tests.support.polling import wait_for
from tests.support.stripe_webhooks import deliver, event


@pytest.mark.django_db(transaction=True)
def test_outcomes_to_a_paid_stripe_invoice(
    celery_worker, stripe, client_with_key, api_key, settings, caplog
):
    # Every log record of the flow, from every logger and thread (the worker's included),
    # is searched for secrets at the end.
    caplog.set_level(logging.DEBUG)
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_current"]
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650  # the facts below are weeks old
    plan_load("support-ai", base_fee="10", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    client_with_key.put("/v1/customers/acme", {"plan": "support-ai"}, format="json")
    # The last full period before this one, and the partial one before it.
    now = timezone.now()
    # From two hours ago: in a month's first hour the month before is still in its grace
    # window, not due, and the full period is the one before it (its calls sent late).
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 400
    reference = now - timedelta(hours=2)
    started = (reference.replace(day=1) - timedelta(days=40)).replace(day=15, hour=0, minute=0)
    Subscription.objects.update(started_at=started)
    due = list(periods_due(as_of=now))
    full_period = due[1]
    stamp = (full_period.start + timedelta(days=1)).isoformat()
    outcomes = client_with_key.post(
        "/v1/outcomes",
        {
            "outcomes": [
                {
                    "id": f"o-{i}",
                    "customer": "acme",
                    "type": "resolution",
                    "status": "succeeded",
                    "timestamp": stamp,
                }
                for i in range(3)
            ]
        },
        format="json",
    )
    assert outcomes.json()["accepted"] == 3
    calls = client_with_key.post(
        "/v1/events",
        {"id": "call-1", "customer": "acme", "outcome": "o-1", "cost": "0.05", "timestamp": stamp},
        format="json",
    )
    assert calls.json()["accepted"] == 1

    assert close_due_periods() == len(due)
    assert wait_for(
        lambda: Invoice.objects.filter(push_state__in=["pushed", "not_sent"]).count() == len(due)
    ), list(Invoice.objects.values_list("push_state", "push_error"))

    invoice = Invoice.objects.get(period_start=full_period.start)
    assert (invoice.status, invoice.total, invoice.push_state) == ("finalized", 1297, "pushed")
    assert [line.amount for line in invoice.lines.all()] == [1000, 297]

    assert (
        deliver(event("evt_paid_1", "invoice.paid", invoice.stripe_invoice_id)).status_code == 200
    )
    assert wait_for(lambda: Invoice.objects.get(pk=invoice.pk).status == "paid")

    # No secret in any log line: the API key (nor its secret part), Stripe's API key, the
    # webhook signing secret.
    logged = caplog.text
    assert "stripe" in {record.name for record in caplog.records}  # its debug lines too
    for secret in (api_key, api_key.split(".", 1)[1], settings.STRIPE_API_KEY, "whsec_current"):
        assert secret not in logged
