"""A percentage of the outcome's value, clamped per outcome to [floor, cap]: what a
customer expects for every combination of floor, cap, value and no value."""

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import AlertKind, AlertRule
from alerts.services import alerts_evaluate
from billing.invoicing.fx import MissingFxRate
from billing.invoicing.models import FxRate
from billing.invoicing.services import period_close, periods_close
from billing.plans.models import Subscription
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


def billed_for(value: str | None, *, floor: str | None, cap: str | None) -> int:
    """The October invoice of one success worth `value` USD on a 5 % price."""
    price = {"type": "deal", "percentage": "5"}
    if floor is not None:
        price["floor"] = floor
    if cap is not None:
        price["cap"] = cap
    version = plan_load("share", outcomes=[price])
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    at = OCTOBER + timedelta(days=3)
    Outcome.objects.create(
        external_id="deal-1",
        customer=customer,
        type="deal",
        status="succeeded",
        occurred_at=at,
        succeeded_at=at,
        succeeded_recorded_at=at,
        value=value,
        value_currency="USD" if value is not None else "",
    )
    return period_close(customer_id=customer.pk, period_start=OCTOBER).total


@pytest.mark.parametrize(
    ("floor", "cap", "value", "cents"),
    [
        # No value: the floor if there is one, else nothing; never the cap.
        (None, None, None, 0),
        ("10", None, None, 1000),
        (None, "50", None, 0),
        ("10", "50", None, 1000),
        # A value: 5 % of it, raised to the floor, lowered to the cap.
        (None, None, "100", 500),
        ("10", None, "100", 1000),
        (None, "50", "100", 500),
        ("10", "50", "400", 2000),
        (None, None, "2000", 10000),
        ("10", None, "2000", 10000),
        (None, "50", "2000", 5000),
        ("10", "50", "2000", 5000),
    ],
)
def test_a_percentage_price_clamps_each_outcome(floor, cap, value, cents):
    assert billed_for(value, floor=floor, cap=cap) == cents


def deal(customer, value: str, currency: str, at: datetime) -> None:
    Outcome.objects.create(
        external_id=f"deal-{value}-{currency}-{at:%d}", customer=customer, type="deal",
        status="succeeded", occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
        value=value, value_currency=currency,
    )  # fmt: skip


def test_a_value_in_another_currency_is_converted_at_the_rate_of_its_success():
    version = plan_load(
        "share-eur", currency="EUR", outcomes=[{"type": "deal", "percentage": "10"}]
    )
    customer = customer_create(external_id="acme", currency="EUR")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    FxRate.objects.create(currency="EUR", effective_from=OCTOBER, usd_per_unit="1.25")
    FxRate.objects.create(currency="GBP", effective_from=OCTOBER, usd_per_unit="1.50")
    FxRate.objects.create(
        currency="EUR", effective_from=OCTOBER + timedelta(days=10), usd_per_unit="1"
    )
    deal(customer, "1000", "USD", OCTOBER + timedelta(days=3))  # 800 EUR -> 80
    deal(customer, "1000", "USD", OCTOBER + timedelta(days=12))  # 1,000 EUR -> 100
    deal(customer, "100", "GBP", OCTOBER + timedelta(days=3))  # 150 USD = 120 EUR -> 12
    deal(customer, "50", "EUR", OCTOBER + timedelta(days=3))  # 50 EUR -> 5

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert (invoice.currency, invoice.total) == ("EUR", 19700)


def test_a_close_waits_for_a_missing_rate_and_names_it(settings):
    version = plan_load("share", outcomes=[{"type": "deal", "percentage": "10", "floor": "1"}])
    waiting = customer_create(external_id="acme")
    other = customer_create(external_id="globex")
    for customer in (waiting, other):
        Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    FxRate.objects.create(
        currency="GBP", effective_from=OCTOBER + timedelta(days=5), usd_per_unit="1.5"
    )
    deal(waiting, "100", "GBP", OCTOBER + timedelta(days=3))  # before the first GBP rate
    deal(other, "100", "USD", OCTOBER + timedelta(days=3))

    with pytest.raises(MissingFxRate, match="GBP on 2026-10-04"):
        period_close(customer_id=waiting.pk, period_start=OCTOBER)
    closed = periods_close(
        customer_ids=[waiting.pk, other.pk], period_start=OCTOBER, period_end=NOVEMBER
    )
    assert [i.customer_id for i in closed.invoices] == [other.pk]  # the others are not held up
    assert {str(rate) for rate in closed.waiting[waiting.pk]} == {"GBP on 2026-10-04"}
    AlertRule.objects.create(name="FX rates closes wait for", kind=AlertKind.MISSING_FX_RATE)
    [alert] = alerts_evaluate(now=NOVEMBER + timedelta(hours=2))
    assert alert.subject == "fx_rate:GBP:2026-10-04"
    assert "acme" in alert.message

    FxRate.objects.create(currency="GBP", effective_from=OCTOBER, usd_per_unit="1.2")
    assert period_close(customer_id=waiting.pk, period_start=OCTOBER).total == 1200
