"""The charge models peers have, worked by hand (issue 19): flat fees per tier, a fixed fee
per outcome with a percentage of its value, free value, graduated percentages. Each
example's figures are worked out in its docstring or comments, from the rule in
docs/pricing.md, not from what the code gives."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from billing.analytics.selectors.margins import MarginFilters, margins_report
from billing.analytics.services import invoices_reconcile
from billing.invoicing.services import period_close
from billing.money import to_minor_units
from billing.plans.models import Plan, Subscription
from billing.plans.pricing import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    Tier,
    rate_changes,
    rate_period,
)
from billing.plans.services import PriceBookError
from metering.models import Customer, UsageEvent
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create


def plan(*outcomes: OutcomeTerms, currency: str = "USD", **fields) -> PlanTerms:
    return PlanTerms(code="p", version=1, currency=currency, outcomes=outcomes, **fields)


def succeeded(**counts: int) -> PeriodQuantities:
    return PeriodQuantities(outcomes={t: OutcomeQuantity(n) for t, n in counts.items()})


def lines(invoice) -> list[tuple[str, str, D, D, int]]:
    return [
        (line.kind, line.description, line.quantity, line.unit_price, line.amount)
        for line in invoice.lines
    ]


# Up to 100 at $1.00 with a $20 platform fee, up to 1,000 at $0.80 with $50, above at $0.50.
FLAT_TIERS = (
    Tier(100, D("1.00"), D("20")),
    Tier(1000, D("0.80"), D("50")),
    Tier(None, D("0.50")),
)


def test_graduated_tiers_bill_the_flat_fee_of_every_tier_reached():
    """1,500 outcomes: 100 x 1.00 + 20, 900 x 0.80 + 50, 500 x 0.50 = 100 + 20 + 720 + 50 +
    250 = $1,140.00; the last tier has no flat fee."""
    invoice = rate_period(
        plan(OutcomeTerms("r", tier_mode="graduated", tiers=FLAT_TIERS)), succeeded(r=1500)
    )

    assert lines(invoice) == [
        ("outcome", "r: 100 outcomes (up to 100)", 100, D("1.00"), 10000),
        ("tier_fee", "r: flat fee (up to 100)", 1, D("20"), 2000),
        ("outcome", "r: 900 outcomes (up to 1000)", 900, D("0.80"), 72000),
        ("tier_fee", "r: flat fee (up to 1000)", 1, D("50"), 5000),
        ("outcome", "r: 500 outcomes (and above)", 500, D("0.50"), 25000),
    ]
    assert invoice.total == 114000


def test_a_count_exactly_on_a_bound_does_not_reach_the_next_tier_or_its_fee():
    """100 outcomes: all in the first tier (up_to is inclusive): 100 x 1.00 + 20 = $120."""
    invoice = rate_period(
        plan(OutcomeTerms("r", tier_mode="graduated", tiers=FLAT_TIERS)), succeeded(r=100)
    )

    assert [amount for *_, amount in lines(invoice)] == [10000, 2000]
    # One more reaches the second tier: + 0.80 + its $50 fee.
    one_more = rate_period(
        plan(OutcomeTerms("r", tier_mode="graduated", tiers=FLAT_TIERS)), succeeded(r=101)
    )
    assert one_more.total == 12000 + 80 + 5000


def test_included_outcomes_come_first_and_reach_no_tier():
    """10 included of 110: 100 billable, all in the first tier: $0 + $100 + $20; none
    billable reaches no tier, so no flat fee at all."""
    terms = OutcomeTerms("r", tier_mode="graduated", tiers=FLAT_TIERS, included_quantity=10)

    assert [amount for *_, amount in lines(rate_period(plan(terms), succeeded(r=110)))] == [
        0,
        10000,
        2000,
    ]
    assert lines(rate_period(plan(terms), succeeded(r=10))) == [
        ("included", "r: 10 outcomes included", 10, D(0), 0)
    ]
    assert rate_period(plan(terms), succeeded(r=0)).lines == ()


def test_volume_tiers_bill_the_flat_fee_of_the_tier_the_total_reaches():
    """Lago's volume example: up to 10,000 at $0.0010, up to 50,000 at $0.0008, up to
    100,000 at $0.0006, above at $0.0004, each with a $10 fee. 65,000 calls: 65,000 x
    0.0006 = $39, + $10 = $49."""
    tiers = tuple(
        Tier(up_to, D(price), D("10"))
        for up_to, price in (
            (10_000, "0.0010"),
            (50_000, "0.0008"),
            (100_000, "0.0006"),
            (None, "0.0004"),
        )
    )

    invoice = rate_period(
        plan(OutcomeTerms("call", tier_mode="volume", tiers=tiers)), succeeded(call=65_000)
    )

    assert lines(invoice) == [
        ("outcome", "call: 65000 outcomes (volume tier)", 65000, D("0.0006"), 3900),
        ("tier_fee", "call: flat fee (volume tier up to 100000)", 1, D("10"), 1000),
    ]
    assert invoice.total == 4900


def test_tiers_of_flat_fees_only_count_their_units_at_zero():
    """A platform fee by volume band: up to 1,000 outcomes $100, up to 10,000 $500, above
    $2,000; no price per outcome. 1,000 outcomes: $100 (the bound is the lower band's);
    1,001: $500."""
    bands = (Tier(1000, None, D("100")), Tier(10_000, None, D("500")), Tier(None, None, D("2000")))
    terms = OutcomeTerms("r", tier_mode="volume", tiers=bands)

    at_bound = rate_period(plan(terms), succeeded(r=1000))
    assert lines(at_bound) == [
        ("outcome", "r: 1000 outcomes (volume tier)", 1000, D(0), 0),
        ("tier_fee", "r: flat fee (volume tier up to 1000)", 1, D("100"), 10000),
    ]
    assert rate_period(plan(terms), succeeded(r=1001)).total == 50000


def test_sub_cent_tier_fees_round_once_per_line():
    """A $0.005 flat fee is half a cent: 1 cent (half up); 3 units at $0.0015 = $0.0045: 0
    cents. Each line rounded once, the total their sum: 1 cent."""
    tiers = (Tier(None, D("0.0015"), D("0.005")),)

    invoice = rate_period(
        plan(OutcomeTerms("r", tier_mode="graduated", tiers=tiers)), succeeded(r=3)
    )

    assert [amount for *_, amount in lines(invoice)] == [0, 1]
    assert invoice.total == 1


def test_a_late_outcome_that_reaches_a_tier_bills_its_fee_as_late_usage():
    """October closed at 100 outcomes ($120). One more arrives late: +1 outcome at $0.80
    and the second tier's $50 fee; a reversal of one of the 100 instead: -1 x $1.00, and
    no fee changes."""
    terms = plan(OutcomeTerms("r", tier_mode="graduated", tiers=FLAT_TIERS))
    closed = rate_period(terms, succeeded(r=100))

    late = rate_changes(
        closed, rate_period(terms, succeeded(r=101)), period="October", source_invoice_id=7
    )
    credit = rate_changes(
        closed, rate_period(terms, succeeded(r=99)), period="October", source_invoice_id=7
    )

    assert [(line.kind, line.description, line.amount) for line in late] == [
        ("late_usage", "late usage from October: r (up to 1000): +1 outcome", 80),
        ("late_usage", "late usage from October: r flat fee (up to 1000)", 5000),
    ]
    assert [(line.kind, line.description, line.amount) for line in credit] == [
        ("credit", "credit for October: r (up to 100): -1 outcome", -100),
    ]


def test_a_reversal_that_leaves_a_tier_credits_its_flat_fee():
    """October closed at 101 outcomes: 100 x 1.00 + 20, 1 x 0.80 + 50 = $170.80. One is
    reversed: the period holds 100, which never reached the second tier, so the credit
    gives back its outcome (-$0.80) and its $50 fee: the period then costs what 100 do."""
    terms = plan(OutcomeTerms("r", tier_mode="graduated", tiers=FLAT_TIERS))
    closed = rate_period(terms, succeeded(r=101))

    credit = rate_changes(
        closed, rate_period(terms, succeeded(r=100)), period="October", source_invoice_id=7
    )

    assert closed.total == 17080
    assert [(line.kind, line.description, line.amount) for line in credit] == [
        ("credit", "credit for October: r (up to 1000): -1 outcome", -80),
        ("credit", "credit for October: r flat fee (up to 1000)", -5000),
    ]
    assert closed.total + sum(line.amount for line in credit) == 12000


# --- a percentage of the value with a fixed fee, and free value (rated in SQL) -------------

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


def _subscribed(price: dict, code: str = "deals") -> Customer:
    version = plan_load(code, outcomes=[{"type": "deal", **price}])
    customer = customer_create(external_id=code)
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return customer


def _deals(
    customer: Customer,
    values: list[str | None],
    *,
    day: int = 1,
    channels: list[str | None] | None = None,
) -> None:
    """Successes in this order of time, an hour apart, worth `values` USD, over
    `channels` (the `channel` property; none by default)."""
    start = Outcome.objects.filter(customer=customer).count()
    for n, (value, channel) in enumerate(
        zip(values, channels or [None] * len(values), strict=True), start=start
    ):
        at = OCTOBER + timedelta(days=day, hours=n)
        Outcome.objects.create(
            external_id=f"d-{n:03}", customer=customer, type="deal", status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=timezone.now(), value=value,
            value_currency="USD" if value is not None else "",
            properties={} if channel is None else {"channel": channel},
        )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_fixed_fee_per_outcome_is_added_to_its_percentage_inside_the_clamp():
    """2 % + $0.25 per outcome, at least $0.30, at most $5.00 (a card processor's price).
    Worth 10: 0.20 + 0.25 = 0.45. Worth 0: 0.25, raised to the floor 0.30. No value: the
    same, 0.30. Worth 1,000: 20.25, lowered to the cap 5.00. Sum: $6.05."""
    customer = _subscribed({"percentage": "2", "fixed_fee": "0.25", "floor": "0.30", "cap": "5.00"})
    _deals(customer, ["10", "0", None, "1000"])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [(line.description, line.amount) for line in invoice.lines.all()] == [
        ("deal: 2 % of the value + 0.25 of 4 outcomes (per outcome, floor 0.3, cap 5)", 605)
    ]


@pytest.mark.django_db(transaction=True)
def test_free_value_is_the_periods_first_value_after_the_included_outcomes():
    """5 % + $0.10, one outcome included, the first $1,000 of value free; values falling
    over time: 900 (included: free, and not counted in the free value), then 600 and 300
    (within the free $1,000: nothing), 200 (crosses it at 900 + 100: 5 % of the 100 above
    it + 0.10 = 5.10), 50 (2.50 + 0.10 = 2.60), 10 (0.50 + 0.10 = 0.60). Sum: $8.30."""
    customer = _subscribed(
        {"percentage": "5", "fixed_fee": "0.10", "free_value": "1000", "included": 1}
    )
    _deals(customer, ["900", "600", "300", "200", "50", "10"])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [(line.kind, line.description, line.amount) for line in invoice.lines.all()] == [
        ("included", "deal: 1 outcome included", 0),
        ("outcome", "deal: 5 % of the value + 0.1 of 5 outcomes (per outcome; the first "
                    "1000 of value free)", 830),
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_an_outcome_after_the_free_value_is_used_up_pays_even_at_zero(client_with_key):
    """10 %, at least $1, the first $900 free: 600 and 300 use it up exactly (both free);
    the next, worth 0, is past it and pays the floor, $1.00; one worth 5 pays 0.50, raised
    to $1.00. The statement shows each outcome's fee, and they sum to the line."""
    customer = _subscribed({"percentage": "10", "floor": "1", "free_value": "900"})
    _deals(customer, ["600", "300", "0", "5"])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    statement = client_with_key.get(f"/v1/invoices/{invoice.pk}/statement").json()

    assert invoice.total == 200
    assert [outcome["fee"] for outcome in statement["outcomes"]] == ["0", "0", "1", "1"]


@pytest.mark.django_db(transaction=True)
def test_the_statement_explains_free_value_and_fixed_fees_outcome_by_outcome(client_with_key):
    """The free-value example above, a page of two outcomes at a time: each fee is the
    rating's (0 included, 0, 0, 5.10, 2.60, 0.60), and they sum to the line."""
    customer = _subscribed(
        {"percentage": "5", "fixed_fee": "0.10", "free_value": "1000", "included": 1}
    )
    _deals(customer, ["900", "600", "300", "200", "50", "10"])
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    fees = []
    while len(fees) < 6:
        page = client_with_key.get(
            f"/v1/invoices/{invoice.pk}/statement", {"limit": 2, "offset": len(fees)}
        ).json()["outcomes"]
        fees += [D(outcome["fee"]) for outcome in page]

    assert fees == [0, 0, 0, D("5.1"), D("2.6"), D("0.6")]
    assert to_minor_units(sum(fees[1:], D(0)), "USD") == invoice.lines.get(kind="outcome").amount


@pytest.mark.django_db(transaction=True)
def test_a_late_outcome_moves_the_free_value_and_the_next_invoice_bills_the_difference():
    """October closes with 600 and 300 (within the free $1,000: $0). A success worth 500
    at October's end arrives after the close: October as it stands bills 5 % of the 400
    past the free value + 0.10 = 20.10, billed on November's invoice as late usage."""
    customer = _subscribed({"percentage": "5", "fixed_fee": "0.10", "free_value": "1000"})
    _deals(customer, ["600", "300"])
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    _deals(customer, ["500"], day=29)

    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert october.total == 0
    assert [(line.kind, line.amount) for line in november.lines.all()] == [("late_usage", 2010)]


# --- a graduated percentage: rates by the period's cumulative value --------------------------

LAGO_TIERS = [
    {"up_to": 1000, "percentage": "1", "flat_fee": "200"},
    {"up_to": 10000, "percentage": "2", "flat_fee": "300"},
    {"percentage": "3", "flat_fee": "400"},
]


@pytest.mark.django_db(transaction=True)
def test_a_graduated_percentage_rates_the_periods_value_tier_by_tier(client_with_key):
    """Lago's example: 1 % up to 1,000 + $200, 2 % up to 10,000 + $300, 3 % above + $400.
    Values 500, 550, 4,000: 5,050 in the period. 1 % of 1,000 = 10 and $200; 2 % of 4,050
    = 81 and $300: $591.00 (Lago's per transaction: 205 + 306 + 80). The statement: 500
    pays 5.00; 550 crosses the bound, 500 at 1 % + 50 at 2 % = 6.00; 4,000 at 2 % = 80."""
    customer = _subscribed({"tier_mode": "graduated", "tiers": LAGO_TIERS})
    _deals(customer, ["500", "550", "4000"])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    statement = client_with_key.get(f"/v1/invoices/{invoice.pk}/statement").json()

    assert [(line.kind, line.description, line.quantity, line.unit_price, line.amount)
            for line in invoice.lines.all()] == [
        ("outcome", "deal: 1 % of 1000 of value (up to 1000)", 1000, D("0.01"), 1000),
        ("tier_fee", "deal: flat fee (up to 1000)", 1, 200, 20000),
        ("outcome", "deal: 2 % of 4050 of value (up to 10000)", 4050, D("0.02"), 8100),
        ("tier_fee", "deal: flat fee (up to 10000)", 1, 300, 30000),
    ]  # fmt: skip
    assert invoice.total == 59100
    positions = {line["position"]: line["description"] for line in statement["lines"]}
    assert [
        (D(outcome["fee"]), outcome["allowance"], positions[outcome["line"]])
        for outcome in statement["outcomes"]
    ] == [
        (5, "percentage_tier", "deal: 1 % of 1000 of value (up to 1000)"),
        (6, "percentage_tier", "deal: 1 % of 1000 of value (up to 1000)"),
        (80, "percentage_tier", "deal: 2 % of 4050 of value (up to 10000)"),
    ]
    assert statement["outcome_types"][0]["amount"] == 59100


@pytest.mark.django_db(transaction=True)
def test_a_value_exactly_on_a_bound_stays_in_the_lower_tier():
    """600 + 400 = 1,000, the first tier's bound: 1 % = 10 and its $200; the second tier
    and its $300 are not reached."""
    customer = _subscribed({"tier_mode": "graduated", "tiers": LAGO_TIERS})
    _deals(customer, ["600", "400"])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [line.amount for line in invoice.lines.all()] == [1000, 20000]


@pytest.mark.django_db(transaction=True)
def test_included_outcomes_and_no_value_come_before_the_tiers():
    """5 % up to 10,000, 3 % above; the first outcome included (worth 9,000: free, not
    counted); then 2,000 and one without a value (worth 0): 5 % of 2,000 = $100."""
    tiers = [{"up_to": 10000, "percentage": "5"}, {"percentage": "3"}]
    customer = _subscribed({"tier_mode": "graduated", "tiers": tiers, "included": 1})
    _deals(customer, ["9000", "2000", None])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [
        ("included", 0),
        ("outcome", 10000),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_sub_cent_graduated_percentage_rounds_once_per_line():
    """2.5 % of 0.30 = 0.0075: three quarters of a cent, 1 cent (half up, once)."""
    customer = _subscribed({"tier_mode": "graduated", "tiers": [{"percentage": "2.5"}]})
    _deals(customer, ["0.30"])

    assert period_close(customer_id=customer.pk, period_start=OCTOBER).total == 1


@pytest.mark.django_db(transaction=True)
def test_late_value_that_crosses_a_tier_is_billed_as_late_usage():
    """5 % up to 10,000, 3 % above. October closes at 9,000 ($450). 2,000 more succeeded
    in October arrives late: October is now 10,000 at 5 % + 1,000 at 3 % = $530; the
    difference, +1,000 at 5 % = $50 and 1,000 at 3 % = $30, is November's late usage."""
    tiers = [{"up_to": 10000, "percentage": "5"}, {"percentage": "3"}]
    customer = _subscribed({"tier_mode": "graduated", "tiers": tiers})
    _deals(customer, ["9000"])
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    _deals(customer, ["2000"], day=29)

    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert october.total == 45000
    assert [(line.kind, line.quantity, line.amount) for line in november.lines.all()] == [
        ("late_usage", 1000, 5000),
        ("late_usage", 1000, 3000),
    ]


# --- prices by dimension: an outcome's price by one of its properties ----------------------


def _by_channel(customer: Customer, channels: list[str | None], *, day: int = 1) -> None:
    _deals(customer, [None] * len(channels), day=day, channels=channels)


CHANNELS = {
    "dimension": "channel",
    "unit_price": "0.99",
    "prices": [
        {"value": "chat", "unit_price": "0.99"},
        {"value": "email", "unit_price": "0.79"},
        {"value": "voice", "unit_price": "1.49"},
    ],
}


@pytest.mark.django_db(transaction=True)
def test_an_outcome_is_billed_once_at_one_price_whatever_values_the_book_names():
    """A price for the empty value, beside the price of any other: an outcome without a
    channel would be both (rating counts what no price names under the empty value), and
    was billed at both: two outcomes, four units. Such a book is refused by its field,
    loading nothing; outcomes without the property pay the price of any other."""
    book = {"dimension": "channel", "unit_price": "0.99",
            "prices": [{"value": "", "unit_price": "2.00"}]}  # fmt: skip

    with pytest.raises(PriceBookError) as refused:
        _subscribed(book)

    assert refused.value.where == "plans[0].outcomes[0].prices[0].value"
    assert not Plan.objects.filter(code="deals").exists()


@pytest.mark.django_db(transaction=True)
def test_an_outcomes_price_follows_its_channel_with_a_line_per_price(client_with_key):
    """Chat $0.99, email $0.79, voice $1.49, anything else $0.99. Two included first
    (a voice and a chat: free whatever their channel); then chat, email, email, voice,
    fax (unknown: the price of any other, never $0) and one without a channel. Lines, one
    per price: chat and other 3 x 0.99 = 2.97; email 2 x 0.79 = 1.58; voice 1 x 1.49."""
    customer = _subscribed({**CHANNELS, "included": 2})
    _by_channel(customer, ["voice", "chat", "chat", "email", "email", "voice", "fax", None])

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    statement = client_with_key.get(f"/v1/invoices/{invoice.pk}/statement").json()

    assert [(line.description, line.quantity, line.unit_price, line.amount)
            for line in invoice.lines.all()] == [
        ("deal: 2 outcomes included", 2, 0, 0),
        ("deal: 3 outcomes (channel: chat, other)", 3, D("0.99"), 297),
        ("deal: 2 outcomes (channel: email)", 2, D("0.79"), 158),
        ("deal: 1 outcome (channel: voice)", 1, D("1.49"), 149),
    ]  # fmt: skip
    assert [(o["allowance"], o["fee"]) for o in statement["outcomes"]] == [
        ("included", "0"), ("included", "0"), ("dimension", "0.99"), ("dimension", "0.79"),
        ("dimension", "0.79"), ("dimension", "1.49"), ("dimension", "0.99"),
        ("dimension", "0.99"),
    ]  # fmt: skip
    by_line: dict[int, D] = {}
    for outcome in statement["outcomes"]:
        by_line[outcome["line"]] = by_line.get(outcome["line"], D(0)) + D(outcome["fee"])
    for line in statement["lines"]:
        assert to_minor_units(by_line.get(line["position"], D(0)), "USD") == line["amount"]


@pytest.mark.django_db(transaction=True)
def test_a_late_outcome_of_a_channel_is_late_usage_at_its_channels_price():
    customer = _subscribed(CHANNELS)
    _by_channel(customer, ["email"])
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    _by_channel(customer, ["voice"], day=29)

    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert [(line.description, line.amount) for line in november.lines.all()] == [
        ("late usage from 2026-10-01 – 2026-11-01: deal (channel: voice): +1 outcome", 149)
    ]


def test_a_split_by_dimension_sums_to_the_undivided_price_when_every_value_shares_it():
    """Every value at $0.005: one line, 3 x 0.005 = 0.015 -> 2 cents, as the undivided
    price bills (three lines of a half cent each would bill 3 cents)."""
    shared = OutcomeTerms(
        "deal", unit_price=D("0.005"), dimension="channel",
        dimension_prices=(("chat", D("0.005")), ("email", D("0.0050"))),
    )  # fmt: skip
    usage = PeriodQuantities(
        outcomes={"deal": OutcomeQuantity(3, by_value=(("", 1), ("chat", 1), ("email", 1)))}
    )

    split = rate_period(plan(shared), usage)

    assert split.total == rate_period(plan(OutcomeTerms("deal", unit_price=D("0.005"))),
                                      succeeded(deal=3)).total == 2  # fmt: skip
    assert [line.description for line in split.lines] == [
        "deal: 3 outcomes (channel: chat, email, other)"
    ]


@pytest.mark.django_db
def test_a_price_by_dimension_shows_in_the_plans_endpoint_as_written(client_with_key):
    plan_load("channels", outcomes=[{"type": "deal", **CHANNELS}])

    [deal] = client_with_key.get("/v1/plans/channels").json()["outcomes"]

    assert deal == {"type": "deal", **CHANNELS}


# --- pass-through by a property of the call ---------------------------------------------------


def test_a_markup_by_the_calls_tier_splits_each_features_cost_by_its_value():
    """20 % on any call, 50 % on premium-tier calls. `reply` cost $4 on premium calls and
    $6 on others; calls without a feature $2: 4 x 1.5 = 6.00; 6 x 1.2 = 7.20; 2 x 1.2 =
    2.40. A line per markup, naming the values it covers."""
    terms = plan(
        pass_through={"": D("0.2")},
        pass_through_by={"": ("tier", (("premium", D("0.5")),))},
    )
    usage = PeriodQuantities(
        cost_by_feature={"reply": D(10), "": D(2)},
        cost_by_call={
            ("reply", "premium", "openai", "gpt-4o"): D(4),
            ("reply", "", "openai", "gpt-4o-mini"): D(6),
            ("", "", "meta", "llama"): D(2),
        },
    )

    assert lines(rate_period(terms, usage)) == [
        ("pass_through", "AI usage at cost + 20 % (calls without a feature; tier: other)",
         D(2), D("1.2"), 240),
        ("pass_through", "AI usage at cost + 50 % (reply; tier: premium)", D(4), D("1.5"), 600),
        ("pass_through", "AI usage at cost + 20 % (reply; tier: other)", D(6), D("1.2"), 720),
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_markup_by_model_is_billed_from_the_periods_calls(client_with_key):
    """10 % on any model, 50 % on gpt-4o. Calls: gpt-4o $2.00, gpt-4o-mini $1.00, llama
    $0.50 (unknown: the markup of any other, never free): 2.00 x 1.5 = 3.00; 1.50 x 1.1 =
    1.65. The preview just before the close is the invoice."""
    version = plan_load(
        "by-model",
        token_pass_through=[
            {"markup": "0.1", "dimension": "model",
             "markups": [{"value": "gpt-4o", "markup": "0.5"}]},
        ],
    )  # fmt: skip
    customer = customer_create(external_id="by-model")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for n, (model, cost) in enumerate((("gpt-4o", "2.00"), ("gpt-4o-mini", "1.00"),
                                       ("llama", "0.50"))):  # fmt: skip
        UsageEvent.objects.create(
            event_id=f"m-{n}", customer=customer, timestamp=OCTOBER + timedelta(days=2, hours=n),
            received_at=timezone.now(), provider="openai", model=model, cost=D(cost),
            cost_source="explicit",
        )  # fmt: skip
    preview = client_with_key.get(
        "/v1/customers/by-model/usage", {"period": (OCTOBER + timedelta(days=5)).isoformat()}
    ).json()["invoice_preview"]

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [(line.description, line.amount) for line in invoice.lines.all()] == [
        ("AI usage at cost + 50 % (calls without a feature; model: gpt-4o)", 300),
        ("AI usage at cost + 10 % (calls without a feature; model: other)", 165),
    ]
    assert [(line["description"], line["amount"]) for line in preview["lines"]] == [
        (line.description, line.amount) for line in invoice.lines.all()
    ]


@pytest.mark.django_db
def test_a_markup_by_dimension_loads_shows_and_refuses_what_it_cannot_bill(client_with_key):
    pass_through = {"feature": "reply", "markup": "0.2", "dimension": "tier",
                    "markups": [{"value": "premium", "markup": "0.5"}]}  # fmt: skip
    plan_load("tiered-markup", token_pass_through=[pass_through])

    shown = client_with_key.get("/v1/plans/tiered-markup").json()["token_pass_through"]

    assert shown == [pass_through]
    for bad, field, message in (
        ({"markup": "0.2", "dimension": "tier"}, "token_pass_through[0]", "a dimension and"),
        ({"markup": "0.2", "dimension": "colour", "markups": [{"value": "x", "markup": "1"}]},
         "token_pass_through[0].dimension", ""),
        ({"markup": "0.2", "dimension": "tier", "markups": [
            {"value": "p", "markup": "1"}, {"value": "p", "markup": "2"}]},
         "token_pass_through[0].markups[1].value", "p appears twice"),
        ({"markup": "0.2", "dimension": "tier", "markups": [{"value": "", "markup": "1"}]},
         "token_pass_through[0].markups[0].value", "is empty"),
    ):  # fmt: skip
        answer = client_with_key.put(
            "/v1/plans/bad", {"name": "Bad", "currency": "USD", "token_pass_through": [bad]},
            format="json",
        )  # fmt: skip
        assert answer.status_code == 400, answer.content
        [error] = answer.json()["errors"]
        assert error["field"] == field and error["message"].startswith(message), error


@pytest.mark.django_db(transaction=True)
def test_the_margin_breakdown_gives_each_type_its_groups_and_fees():
    """Closed October, broken down: each outcome type's revenue is its lines, flat fees
    and groups included. Deals on Lago's tiers, 500 + 550 + 4,000: $591.00; tickets by
    channel, a voice one and an unknown one: 1.49 + 0.99 = $2.48."""
    version = plan_load(
        "mixed",
        outcomes=[
            {"type": "deal", "tier_mode": "graduated", "tiers": LAGO_TIERS},
            {"type": "ticket", **CHANNELS},
        ],
    )
    customer = customer_create(external_id="mixed")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    _deals(customer, ["500", "550", "4000"])
    for n, channel in enumerate(("voice", "fax")):
        at = OCTOBER + timedelta(days=3, hours=n)
        Outcome.objects.create(
            external_id=f"t-{n}", customer=customer, type="ticket", status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
            properties={"channel": channel},
        )  # fmt: skip
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    invoices_reconcile(invoice_ids=[invoice.pk])

    report = margins_report(
        start=OCTOBER, end=NOVEMBER, group_by="outcome_type", filters=MarginFilters(),
        now=NOVEMBER + timedelta(days=1),
    )  # fmt: skip

    assert {row.key: row.revenue for row in report.rows} == {
        "deal": D("591.00"),
        "ticket": D("2.48"),
    }
    assert report.totals.revenue == D(invoice.total) / 100


@pytest.mark.django_db(transaction=True)
def test_sub_cent_fees_of_a_percentage_with_a_fixed_fee_are_summed_then_rounded_once():
    """1 % of 0.10 + 0.002 = 0.003 per outcome; three: 0.009, rounded once on the line:
    1 cent (three lines rounded each would be 0)."""
    customer = _subscribed({"percentage": "1", "fixed_fee": "0.002"})
    _deals(customer, ["0.10", "0.10", "0.10"])

    assert period_close(customer_id=customer.pk, period_start=OCTOBER).total == 1
