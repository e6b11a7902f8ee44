"""Rating, worked by hand: each price model on quantities small enough to check."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from billing.invoicing.services import period_close
from billing.money import to_minor_units
from billing.plans.models import Subscription
from billing.plans.pricing import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    Tier,
    rate_period,
)
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
TIERS = (Tier(100, D("1.00")), Tier(1000, D("0.80")), Tier(None, D("0.50")))


def plan(*outcomes: OutcomeTerms, currency: str = "USD", **fields) -> PlanTerms:
    return PlanTerms(code="p", version=1, currency=currency, outcomes=outcomes, **fields)


def succeeded(**counts: int) -> PeriodQuantities:
    return PeriodQuantities(outcomes={t: OutcomeQuantity(n) for t, n in counts.items()})


def amounts(invoice) -> list[int]:
    return [line.amount for line in invoice.lines]


def test_flat_price_per_success_like_fin():
    invoice = rate_period(
        plan(OutcomeTerms("resolution", unit_price=D("0.99"))), succeeded(resolution=1234)
    )
    assert amounts(invoice) == [122166]  # 1,234 x $0.99 = $1,221.66
    assert invoice.lines[0].quantity == 1234 and invoice.lines[0].unit_price == D("0.99")


@pytest.mark.django_db(transaction=True)  # a close sees only what committed before it
def test_failures_are_never_billed():
    # Only succeeded outcomes reach rating; none succeeded, nothing billed.
    assert (
        rate_period(plan(OutcomeTerms("resolution", unit_price=D("0.99"))), succeeded()).total == 0
    )
    # And the period's quantities hold only the successes: of 2 succeeded, 3 failed, one
    # pending and one reversed, the close bills 2 x $0.99.
    version = plan_load("p", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    at = OCTOBER + timedelta(days=3)
    statuses = ["succeeded"] * 2 + ["failed"] * 3 + ["pending", "reversed"]
    for n, status in enumerate(statuses):
        Outcome.objects.create(
            external_id=f"o-{n}",
            customer=customer,
            type="resolution",
            status=status,
            occurred_at=at,
            succeeded_at=at if status in ("succeeded", "reversed") else None,
            succeeded_recorded_at=at if status in ("succeeded", "reversed") else None,
            failed_at=at if status == "failed" else None,
            reversed_at=at if status == "reversed" else None,
        )

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [(line.quantity, line.amount) for line in invoice.lines.all()] == [(2, 198)]


def test_graduated_and_volume_differ_on_the_same_quantity():
    graduated = rate_period(
        plan(OutcomeTerms("r", tier_mode="graduated", tiers=TIERS)), succeeded(r=1500)
    )
    volume = rate_period(
        plan(OutcomeTerms("r", tier_mode="volume", tiers=TIERS)), succeeded(r=1500)
    )
    # Graduated: 100 x 1.00 + 900 x 0.80 + 500 x 0.50 = 100 + 720 + 250 = $1,070.00
    assert amounts(graduated) == [10000, 72000, 25000]
    assert graduated.total == 107000
    # Volume: 1,500 reaches the last tier: 1,500 x 0.50 = $750.00
    assert amounts(volume) == [75000]


def test_graduated_within_the_first_tier_and_at_a_boundary():
    one_tier = rate_period(
        plan(OutcomeTerms("r", tier_mode="graduated", tiers=TIERS)), succeeded(r=100)
    )
    assert amounts(one_tier) == [10000]
    volume_at_boundary = rate_period(
        plan(OutcomeTerms("r", tier_mode="volume", tiers=TIERS)), succeeded(r=1000)
    )
    assert amounts(volume_at_boundary) == [80000]  # 1,000 x 0.80: the boundary is inclusive


def test_package_pricing_rounds_blocks_up():
    invoice = rate_period(
        plan(OutcomeTerms("email_drafted", unit_price=D("5.00"), package_size=100)),
        succeeded(email_drafted=250),
    )
    # 250 e-mails in blocks of 100: 3 blocks x $5.00
    assert invoice.lines[0].quantity == 3
    assert amounts(invoice) == [1500]


def test_included_quantity_is_free():
    invoice = rate_period(
        plan(OutcomeTerms("r", unit_price=D("0.99"), included_quantity=100)), succeeded(r=130)
    )
    assert [(line.kind, line.quantity, line.amount) for line in invoice.lines] == [
        ("included", 100, 0),
        ("outcome", 30, 2970),
    ]


def test_included_quantity_above_usage_bills_nothing():
    invoice = rate_period(
        plan(OutcomeTerms("r", unit_price=D("0.99"), included_quantity=100)), succeeded(r=40)
    )
    assert invoice.total == 0


def test_percentage_of_value_bills_the_clamped_sum_from_sql():
    # Three negotiated discounts worth 100, 1,000 and 10,000 EUR at 5 %, floor 10, cap 50:
    # 5 -> floor 10; 50; 500 -> cap 50. The SQL aggregate hands rating the sum: 110.
    terms = OutcomeTerms(
        "invoice_negotiated", model="percentage", percentage=D("5"), floor=D("10"), cap=D("50")
    )
    invoice = rate_period(
        plan(terms, currency="EUR"),
        PeriodQuantities(outcomes={"invoice_negotiated": OutcomeQuantity(3, D("110"))}),
    )
    assert amounts(invoice) == [11000]
    assert "5 % of the value of 3 outcomes" in invoice.lines[0].description


def test_minimum_spend_tops_up_a_small_total():
    invoice = rate_period(
        plan(OutcomeTerms("r", unit_price=D("0.99")), minimum_spend=D("50")), succeeded(r=10)
    )
    # 10 x 0.99 = 9.90; top-up 40.10 to reach 50.00
    assert amounts(invoice) == [990, 4010]
    assert invoice.total == 5000
    assert invoice.lines[-1].kind == "minimum"


def test_minimum_spend_adds_nothing_above_it():
    invoice = rate_period(
        plan(OutcomeTerms("r", unit_price=D("0.99")), minimum_spend=D("5")), succeeded(r=10)
    )
    assert [line.kind for line in invoice.lines] == ["outcome"]


def test_zero_decimal_currency():
    invoice = rate_period(
        plan(OutcomeTerms("r", unit_price=D("12.5")), currency="JPY", base_fee=D("1000")),
        succeeded(r=3),
    )
    # JPY has no minor unit: 1,000 yen + 3 x 12.5 = 37.5 -> 38 yen (half up)
    assert amounts(invoice) == [1000, 38]


def test_three_decimal_currency():
    assert to_minor_units(D("1.2345"), "KWD") == 1235
    assert to_minor_units(D("1.2344"), "KWD") == 1234


def test_premium_seats_and_base_fee():
    invoice = rate_period(
        plan(base_fee=D("49"), premium_seat_fee=D("10")), PeriodQuantities(seats=12)
    )
    assert [(line.kind, line.amount) for line in invoice.lines] == [
        ("base_fee", 4900),
        ("seats", 12000),
    ]


def test_token_pass_through_with_markup_per_feature():
    invoice = rate_period(
        plan(pass_through={"": D("0.20"), "seo": D("0")}),
        PeriodQuantities(cost_by_feature={"reply": D("12.345"), "seo": D("3.10"), "": D("1")}),
    )
    # calls without a feature: 1 x 1.2 = 1.20; reply: 12.345 x 1.2 = 14.814 -> 14.81;
    # seo at cost: 3.10
    assert [(line.quantity, line.amount) for line in invoice.lines] == [
        (D("1"), 120),
        (D("12.345"), 1481),
        (D("3.10"), 310),
    ]


def test_pass_through_only_for_named_features_when_no_default():
    invoice = rate_period(
        plan(pass_through={"seo": D("0.5")}),
        PeriodQuantities(cost_by_feature={"reply": D("10"), "seo": D("2")}),
    )
    assert amounts(invoice) == [300]


def test_half_up_rounding_once_per_line():
    invoice = rate_period(plan(OutcomeTerms("r", unit_price=D("0.005"))), succeeded(r=1))
    assert amounts(invoice) == [1]  # 0.005 USD is half a cent: rounds up, once
