"""A plan change applies from the next period; fixed seats changed mid-period are
prorated by day."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.invoicing.services import period_close
from billing.plans.models import SeatChange, Subscription
from billing.plans.periods import period_containing
from tests.billing.factories import plan_load

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)


def usage_preview(client, **window):
    response = client.get("/v1/customers/acme/usage", window)
    assert response.status_code == 200, response.content
    return response.json()["invoice_preview"]


def test_a_plan_change_applies_from_the_next_period(client_with_key):
    plan_load("basic", base_fee="10")
    plan_load("pro", base_fee="99")
    client_with_key.put("/v1/customers/acme", {"plan": "basic"}, format="json")

    body = client_with_key.put("/v1/customers/acme", {"plan": "pro"}, format="json").json()

    _, next_start = period_containing(timezone.now(), anchor_day=1, timezone="UTC")
    assert body["plan"] == "basic"
    assert body["next_plan"]["plan"] == "pro"
    assert body["next_plan"]["from"] == next_start.isoformat().replace("+00:00", "Z")
    assert usage_preview(client_with_key)["plan"] == "basic"
    next_month = {
        "from": next_start.isoformat(),
        "to": (next_start + timedelta(days=28)).isoformat(),
    }
    assert usage_preview(client_with_key, **next_month)["plan"] == "pro"


def test_changing_back_calls_the_pending_change_off(client_with_key):
    plan_load("basic", base_fee="10")
    plan_load("pro", base_fee="99")
    client_with_key.put("/v1/customers/acme", {"plan": "basic"}, format="json")
    client_with_key.put("/v1/customers/acme", {"plan": "pro"}, format="json")

    body = client_with_key.put("/v1/customers/acme", {"plan": "basic"}, format="json").json()

    assert (body["plan"], body["next_plan"]) == ("basic", None)


def test_fixed_seats_changed_mid_period_are_prorated_by_day(client_with_key):
    version = plan_load("seats", premium_seat_fee="10")
    november = datetime(2026, 11, 1, tzinfo=UTC)
    customer_body = client_with_key.put(
        "/v1/customers/acme", {"plan": "seats", "premium_seats": 10}, format="json"
    ).json()
    subscription = Subscription.objects.get(customer__external_id="acme")
    Subscription.objects.filter(pk=subscription.pk).update(started_at=november)
    # From the 16th, 20 seats: 15 days x 10 + 15 days x 20 = 450 seat-days of 30.
    SeatChange.objects.create(
        subscription=subscription, seats=20, effective_at=datetime(2026, 11, 16, 9, tzinfo=UTC)
    )

    invoice = period_close(customer_id=subscription.customer_id, period_start=november)

    [line] = invoice.lines.all()
    assert (line.quantity, line.unit_price) == (Decimal(450), Decimal("0.333333333333"))
    assert line.amount == 15000  # $150.00: $10 a seat for a month, prorated
    assert customer_body["premium_seats"] == 10
    assert version.premium_seat_fee == Decimal(10)


def test_seats_without_a_change_are_billed_whole(client_with_key):
    plan_load("seats", premium_seat_fee="10")
    client_with_key.put("/v1/customers/acme", {"plan": "seats", "premium_seats": 3}, format="json")
    [line] = usage_preview(client_with_key)["lines"]
    assert (line["quantity"], line["amount"]) == ("3", 3000)
