"""The charge models peers have, worked by hand (issue 19): flat fees per tier, a fixed fee
per outcome with a percentage of its value, free value, graduated percentages. Each
example's figures are worked out in its docstring or comments, from the rule in
docs/pricing.md, not from what the code gives."""

from decimal import Decimal as D

from billing.plans.pricing import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    Tier,
    rate_changes,
    rate_period,
)


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
