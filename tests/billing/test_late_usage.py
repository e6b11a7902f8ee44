"""Facts that arrive after their period was invoiced land on the next invoice: late
usage billed, reversals credited; nothing dropped, nothing billed twice."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.invoicing.services import PeriodNotReady, period_close
from billing.plans.models import Subscription
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def customer():
    version = plan_load(
        "support-ai",
        outcomes=[{"type": "resolution", "unit_price": "0.99"}],
        token_pass_through=[{"feature": "", "markup": "0.5"}],
    )
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return customer


def succeeded(customer, external_id, at, recorded_at=None):
    return Outcome.objects.create(
        external_id=external_id,
        customer=customer,
        type="resolution",
        status="succeeded",
        occurred_at=at,
        succeeded_at=at,
        succeeded_recorded_at=recorded_at or at,
    )


def lines(invoice):
    return [(line.kind, line.quantity, line.amount) for line in invoice.lines.all()]


def test_a_success_stored_after_its_period_was_invoiced_is_billed_next_time(customer):
    succeeded(customer, "on-time", OCTOBER + timedelta(days=3))
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    assert october.total == 99

    succeeded(customer, "late", OCTOBER + timedelta(days=30), recorded_at=timezone.now())
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert lines(november) == [("late_usage", Decimal(1), 99)]
    assert "late usage from 2026-10-01" in november.lines.get().description
    october.refresh_from_db()
    assert october.total == 99  # the closed invoice is not touched


def test_a_reversal_after_the_invoice_is_a_credit_next_time(customer):
    outcome = succeeded(customer, "o-1", OCTOBER + timedelta(days=3))
    period_close(customer_id=customer.pk, period_start=OCTOBER)

    Outcome.objects.filter(pk=outcome.pk).update(status="reversed", reversed_at=timezone.now())
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert lines(november) == [("credit", Decimal(-1), -99)]


def test_a_reversal_before_the_close_is_neither_billed_nor_credited(customer):
    outcome = succeeded(customer, "o-1", OCTOBER + timedelta(days=3))
    Outcome.objects.filter(pk=outcome.pk).update(status="reversed", reversed_at=timezone.now())

    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert october.total == 0 and november.total == 0


def test_a_late_success_reversed_before_the_next_close_is_never_billed(customer):
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    late = succeeded(customer, "late", OCTOBER + timedelta(days=2), recorded_at=timezone.now())
    Outcome.objects.filter(pk=late.pk).update(status="reversed", reversed_at=timezone.now())

    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert november.total == 0


def test_a_late_call_is_billed_as_late_usage_at_its_markup(customer, client_with_key, settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650  # the dates here are fixed, the clock is not
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    # A call of October, received now: after October's invoice.
    response = client_with_key.post(
        "/v1/events",
        {
            "id": "late-call",
            "customer": "acme",
            "cost": "2.00",
            "timestamp": (OCTOBER + timedelta(days=29)).isoformat(),
        },
        format="json",
    )
    assert response.json()["accepted"] == 1

    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert lines(november) == [("late_usage", Decimal("2"), 300)]  # $2 at cost + 50 %


def test_nothing_is_billed_twice_over_three_closes(customer):
    succeeded(customer, "o-1", OCTOBER + timedelta(days=1))
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    succeeded(customer, "late", OCTOBER + timedelta(days=2), recorded_at=timezone.now())
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)
    december = period_close(customer_id=customer.pk, period_start=datetime(2026, 12, 1, tzinfo=UTC))

    assert november.total == 99
    assert december.total == 0


def test_periods_close_in_order(customer):
    with pytest.raises(PeriodNotReady):
        period_close(customer_id=customer.pk, period_start=NOVEMBER)


def test_late_usage_fills_a_minimum_spend_top_up_before_it_is_billed(customer):
    """A minimum spend is a floor on a period's total: late usage first uses up the top-up
    the period was billed, only what goes past the minimum is billed, and a credit lowers
    the period no further than its minimum."""
    version = plan_load(
        "committed", outcomes=[{"type": "resolution", "unit_price": "1"}], minimum_spend="10"
    )
    Subscription.objects.filter(customer=customer).update(plan=version.plan)
    for i in range(4):
        succeeded(customer, f"on-time-{i}", OCTOBER + timedelta(days=1))
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    assert lines(october) == [("outcome", 4, 400), ("minimum", 1, 600)]

    # 3 more: October is now 7 + a top-up of 3: the top-up billed covers them.
    for i in range(3):
        succeeded(customer, f"late-{i}", OCTOBER + timedelta(days=2))
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)
    assert [(kind, amount) for kind, _, amount in lines(november)] == [
        ("minimum", 1000),  # November's own: no usage, the minimum
        ("late_usage", 300),  # 3 more resolutions of October
        ("credit", -300),  # ... which October's top-up had paid for already
    ]

    # 8 more: October is 15, past its minimum: 5 more to pay.
    for i in range(8):
        succeeded(customer, f"later-{i}", OCTOBER + timedelta(days=3))
    december = period_close(customer_id=customer.pk, period_start=DECEMBER)
    assert [(kind, amount) for kind, _, amount in lines(december)] == [
        ("minimum", 1000),
        ("late_usage", 800),
        ("credit", -300),  # the rest of the top-up
    ]

    # 6 reversed: October is 9, under its minimum again: credited down to 10, not to 9.
    Outcome.objects.filter(external_id__in=[f"later-{i}" for i in range(6)]).update(
        status="reversed", reversed_at=timezone.now()
    )
    january = period_close(customer_id=customer.pk, period_start=datetime(2027, 1, 1, tzinfo=UTC))
    assert [(kind, amount) for kind, _, amount in lines(january)] == [
        ("minimum", 1000),
        ("credit", -600),
        ("late_usage", 100),  # a top-up of 1 again
    ]
    october_billed = sum(
        line.amount
        for invoice in (october, november, december, january)
        for line in invoice.lines.all()
        if line.source_invoice_id == october.pk or invoice == october
    )
    assert october_billed == 1000  # 9 resolutions, topped up to the minimum of 10
