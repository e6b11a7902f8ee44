"""GET /v1/analytics/premium: the AI cost per premium seat against the seat fee.

Five premium seats cost $2, $4, $6, $8 and $30 against a $10 fee: median $6, p90
$8 + 0.6 x ($30 - $8) = $21.20, max $30; one seat (20 %) costs more than its fee; fees
$50 = cost $50, a 0 % margin. For a 20 % target the tier may spend $40: capping every seat
at $20 gives 2 + 4 + 6 + 8 + 20 = 40, and leaves 4 of 5 seats (80 %) untouched.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.analytics.selectors.premium import fair_use_cap, percentile
from billing.plans.models import Subscription
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def seats(client_with_key):
    plan = plan_load(
        "max",
        base_fee="0",
        premium_seat_fee="10",
        seat_mode="active",
        premium_target_margin_percent="20",
    ).plan
    other = plan_load("basic", base_fee="5").plan
    euro = plan_load("euro-max", currency="EUR", premium_seat_fee="10").plan
    start = timezone.now() - timedelta(days=2)
    for external_id, subscribed in (("duo", plan), ("lingo", plan), ("plain", other), ("eu", euro)):
        customer = customer_create(external_id=external_id)
        Subscription.objects.create(customer=customer, plan=subscribed, started_at=start)
    at = (timezone.now() - timedelta(hours=1)).isoformat()
    events = [
        # duo's u1 costs 2 over two calls; lingo's u1 is another seat
        event_payload("duo", user="u1", tier="premium", cost="1", timestamp=at),
        event_payload("duo", user="u1", tier="premium", cost="1", timestamp=at),
        event_payload("duo", user="u2", tier="premium", cost="4", timestamp=at),
        event_payload("duo", user="u3", tier="premium", cost="30", timestamp=at),
        event_payload("lingo", user="u1", tier="premium", cost="6", timestamp=at),
        event_payload("lingo", user="u2", tier="premium", cost="8", timestamp=at),
        # not premium seats: a free-tier call, a premium call without a user
        event_payload("lingo", user="u9", tier="free", cost="100", timestamp=at),
        event_payload("lingo", tier="premium", cost="100", timestamp=at),
        event_payload("plain", user="p1", tier="premium", cost="3", timestamp=at),
        event_payload("eu", user="e1", tier="premium", cost="12", timestamp=at),
    ]
    response = client_with_key.post("/v1/events", {"events": events}, format="json")
    assert response.json()["accepted"] == len(events)
    return {"from": start.isoformat(), "to": timezone.now().isoformat()}


def test_the_cost_per_seat_distribution_against_the_fee(client_with_key, seats):
    response = client_with_key.get("/v1/analytics/premium", seats)

    assert response.status_code == 200, response.content
    plans = {plan["plan"]: plan for plan in response.json()["plans"]}
    assert set(plans) == {"max", "euro-max"}  # basic has no premium seat fee
    report = plans["max"]
    assert report["seats"] == 5
    assert report["ai_cost_per_seat_usd"] == {"median": "6", "p90": "21.2", "max": "30"}
    assert (report["seats_over_fee"], report["share_over_fee"]) == (1, "0.2")
    assert report["tier_margin_percent"] == "0"
    assert report["target_margin_percent"] == "20"
    assert report["fair_use_cap_usd"] == "20"
    assert report["fair_use_cap_percentile"] == "80"


def test_a_fee_in_a_currency_without_a_rate_says_so(client_with_key, seats):
    plans = {
        p["plan"]: p for p in client_with_key.get("/v1/analytics/premium", seats).json()["plans"]
    }

    report = plans["euro-max"]
    assert report["missing_rate"] is True
    assert report["seats"] == 1
    assert report["seats_over_fee"] is None
    assert report["fair_use_cap_usd"] is None


def test_percentiles_interpolate_between_ranks():
    values = [Decimal(v) for v in (1, 2, 3, 4)]

    assert percentile(values, Decimal("0.5")) == Decimal("2.5")
    assert percentile(values, Decimal("0.9")) == Decimal("3.7")
    assert percentile([Decimal(7)], Decimal("0.9")) == 7


def test_no_cap_is_needed_when_the_tier_keeps_its_target():
    assert fair_use_cap([Decimal(1), Decimal(2)], allowed=Decimal(3)) is None
    assert fair_use_cap([Decimal(1), Decimal(2)], allowed=Decimal("2.5")) == Decimal("1.5")
    assert fair_use_cap([Decimal(5), Decimal(5)], allowed=Decimal(1)) == Decimal("0.5")


@settings(max_examples=300, deadline=None)
@given(
    costs=st.lists(
        st.decimals(min_value=0, max_value=100, places=12, allow_nan=False), max_size=30
    ),
    allowed=st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False),
)
def test_the_fair_use_cap_is_the_largest_that_keeps_within_the_allowance(costs, allowed):
    """Were every seat capped at the cap, the seats would cost at most what the tier may
    spend; a cap one unit (1e-12) higher would cost more. No cap: uncapped, they fit."""
    costs = sorted(costs)
    cap = fair_use_cap(costs, allowed)

    def capped_at(limit: Decimal) -> Decimal:
        return sum((min(cost, limit) for cost in costs), Decimal(0))

    if cap is None:
        assert sum(costs, Decimal(0)) <= allowed
    else:
        assert capped_at(cap) <= allowed
        assert capped_at(cap + Decimal("1e-12")) > allowed
