"""Properties of rating beyond the worked examples."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.plans.pricing import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    Tier,
    rate_period,
)

prices = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
quantities = st.integers(min_value=0, max_value=100_000)


@st.composite
def tiers(draw):
    bounds = sorted(draw(st.sets(st.integers(1, 50_000), min_size=0, max_size=4)))
    tier_prices = draw(st.lists(prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    # Each tier with a unit price, a flat fee, or both.
    kinds = draw(st.lists(st.sampled_from(["unit", "flat", "both"]), min_size=len(bounds) + 1,
                          max_size=len(bounds) + 1))  # fmt: skip
    return tuple(
        Tier(b, None if kind == "flat" else p, None if kind == "unit" else draw(prices))
        for b, p, kind in zip([*bounds, None], tier_prices, kinds, strict=True)
    )


@st.composite
def outcome_terms(draw):
    mode = draw(st.sampled_from(["flat", "graduated", "volume", "package"]))
    included = draw(st.integers(0, 500))
    if mode in {"graduated", "volume"}:
        return OutcomeTerms("r", tier_mode=mode, tiers=draw(tiers()), included_quantity=included)
    package = draw(st.integers(1, 1000)) if mode == "package" else None
    return OutcomeTerms(
        "r", unit_price=draw(prices), package_size=package, included_quantity=included
    )


@st.composite
def plans(draw):
    return PlanTerms(
        code="p",
        version=1,
        currency=draw(st.sampled_from(["USD", "EUR", "JPY", "KWD"])),
        base_fee=draw(prices),
        minimum_spend=draw(st.none() | prices),
        premium_seat_fee=draw(st.none() | prices),
        outcomes=(draw(outcome_terms()),),
        pass_through=draw(st.dictionaries(st.sampled_from(["", "a"]), prices, max_size=2)),
    )


def usage(succeeded: int, seats: int = 0, cost: Decimal = Decimal(0)) -> PeriodQuantities:
    return PeriodQuantities(
        outcomes={"r": OutcomeQuantity(succeeded)}, seats=seats, cost_by_feature={"a": cost}
    )


@given(plans(), quantities, st.integers(0, 1000), prices)
def test_total_is_the_sum_of_lines_and_amounts_are_non_negative_integers(plan, n, seats, cost):
    invoice = rate_period(plan, usage(n, seats, cost))
    assert invoice.total == sum(line.amount for line in invoice.lines)
    for line in invoice.lines:
        assert type(line.amount) is int and line.amount >= 0
        assert isinstance(line.quantity, Decimal) and isinstance(line.unit_price, Decimal)


@given(plans(), quantities, quantities)
def test_more_usage_never_lowers_a_flat_or_graduated_total(plan, n, extra):
    if plan.outcomes[0].tier_mode == "volume":
        return  # volume pricing may fall when the total reaches a cheaper tier: by design
    assert rate_period(plan, usage(n + extra)).total >= rate_period(plan, usage(n)).total


values = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False)


@st.composite
def graduated_percentages(draw):
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), max_size=3)))
    rates = draw(st.lists(st.decimals(0, 100, places=3), min_size=len(bounds) + 1,
                          max_size=len(bounds) + 1))  # fmt: skip
    fees = draw(st.lists(st.none() | prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    tiers = tuple(
        Tier(bound, None, fee, rate)
        for bound, rate, fee in zip([*bounds, None], rates, fees, strict=True)
    )
    return PlanTerms(
        code="p",
        version=1,
        currency=draw(st.sampled_from(["USD", "JPY", "KWD"])),
        outcomes=(OutcomeTerms("r", model="percentage", tier_mode="graduated", tiers=tiers),),
    )


@given(graduated_percentages(), values, values)
def test_a_graduated_percentage_is_the_sum_of_its_lines_and_never_falls_with_more_value(
    plan, value, extra
):
    def rated(worth: Decimal):
        return rate_period(plan, PeriodQuantities(outcomes={"r": OutcomeQuantity(1, value=worth)}))

    invoice = rated(value)
    assert invoice.total == sum(line.amount for line in invoice.lines) >= 0
    # The tier lines' values add up to the period's value.
    assert sum(line.quantity for line in invoice.lines if line.kind == "outcome") == value
    assert rated(value + extra).total >= invoice.total


@given(
    prices,
    st.lists(st.tuples(st.sampled_from(["", "chat", "email", "voice"]), st.integers(0, 10**5))),
    st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_a_split_by_dimension_sums_to_the_undivided_price_when_every_value_shares_it(
    price, split, currency
):
    counts: dict[str, int] = {}
    for value, count in split:
        counts[value] = counts.get(value, 0) + count
    by_channel = OutcomeTerms(
        "r", unit_price=price, dimension="channel",
        dimension_prices=(("chat", price), ("email", price), ("voice", price)),
    )  # fmt: skip
    total = sum(counts.values())
    split_usage = PeriodQuantities(
        outcomes={"r": OutcomeQuantity(total, by_value=tuple(sorted(counts.items())))}
    )

    undivided = rate_period(
        PlanTerms("p", 1, currency, outcomes=(OutcomeTerms("r", unit_price=price),)), usage(total)
    )
    divided = rate_period(PlanTerms("p", 1, currency, outcomes=(by_channel,)), split_usage)

    assert divided.total == undivided.total


@given(plans(), quantities)
def test_no_float_anywhere_in_a_line(plan, n):
    for line in rate_period(plan, usage(n)).lines:
        for value in (line.quantity, line.unit_price, line.amount):
            assert not isinstance(value, float)
