"""Currencies and the one rounding of money.

Prices and costs are exact Decimals; an invoice line's amount is an integer number of
the currency's minor units (cents; yen; fils), rounded once, by to_minor_units, half up:
0.005 USD is 1 cent, 0.0049 USD is 0 cents.
"""

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, list_currencies

_KNOWN = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in _KNOWN


def minor_unit_digits(currency: str) -> int:
    """JPY 0, USD 2, KWD 3: from CLDR's currency data (babel)."""
    return get_currency_precision(currency)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """The only rounding of money: an exact amount to whole minor units, half up."""
    return int(amount.scaleb(minor_unit_digits(currency)).quantize(Decimal(1), ROUND_HALF_UP))


def from_minor_units(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-minor_unit_digits(currency))


def margin_of_revenue(
    revenue: Decimal | None, cost: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """What a margin is, everywhere (a period's invoice, the report's rows, the premium
    tier): revenue − cost, and that as a percent of revenue to two places (half even, as
    Decimal's context rounds). None where revenue or cost is unknown; the percent also
    None where there is no revenue. Both figures in one currency: the caller converts."""
    if revenue is None or cost is None:
        return None, None
    margin = revenue - cost
    percent = (
        (margin / revenue * 100).quantize(Decimal("0.01"), ROUND_HALF_EVEN) if revenue else None
    )
    return margin, percent
