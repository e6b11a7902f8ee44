"""A percentage of the outcome's value, clamped per outcome to [floor, cap]: what a
customer expects for every combination of floor, cap, value and no value."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.models import Subscription
from billing.services.invoicing import period_close
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

# Closes bill what their snapshot sees of committed transactions (billing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


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
