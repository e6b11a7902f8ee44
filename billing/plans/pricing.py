"""Rating: from a plan's terms and a period's quantities to invoice lines. Pure functions.

Every input quantity comes from SQL aggregates (billing/invoicing/selectors/); nothing here
touches the database or loops over events. Each line carries its quantity and exact
unit price, and its amount in integer minor units rounded once, by
money.to_minor_units (half up). An invoice's total is the sum of its lines.

About 570 lines: every price model (per outcome, tiers with flat fees, packages, a
percentage, a graduated percentage, by a property of the outcome), pass-through with its
markups, and the difference of two ratings, each once; together they are what a plan
charges. (A percentage's fee per outcome is summed in SQL: PERCENTAGE_FEE_SQL.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from billing.money import from_minor_units, to_minor_units
from billing.plans.models import LineKind, PriceModel, SeatMode, TierMode

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None  # inclusive unit count; None: and above
    unit_price: Decimal | None  # None: its units are billed at 0 (a flat fee only)
    flat_fee: Decimal | None = None  # billed once when the period's units reach the tier
    # A graduated percentage's: percent of the value in the tier (up_to: a value then).
    percentage: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OutcomeTerms:
    outcome_type: str
    model: str = PriceModel.UNIT
    unit_price: Decimal | None = None
    percentage: Decimal | None = None
    floor: Decimal | None = None
    cap: Decimal | None = None
    fixed_fee: Decimal | None = None  # PERCENTAGE: per billable unit, inside the clamp
    free_value: Decimal | None = None  # PERCENTAGE: the period's first value not charged
    included_quantity: int = 0
    tier_mode: str = TierMode.NONE
    tiers: tuple[Tier, ...] = ()
    package_size: int | None = None
    # UNIT by a property of the outcome: (value, unit price) of some values; any other
    # value (or none) pays unit_price.
    dimension: str = ""
    dimension_prices: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class PlanTerms:
    code: str
    version: int
    currency: str
    base_fee: Decimal = ZERO
    minimum_spend: Decimal | None = None
    premium_seat_fee: Decimal | None = None
    seat_mode: str = SeatMode.FIXED
    reversal_window_days: int = 7
    outcomes: tuple[OutcomeTerms, ...] = ()
    # feature -> markup (0.2 = +20 %); "" is every feature not named.
    pass_through: dict[str, Decimal] = field(default_factory=dict)
    # feature -> (a property of the call: tier, provider or model; the markup of some of
    # its values): what differs from the feature's markup above, by the call's value.
    pass_through_by: dict[str, tuple[str, tuple[tuple[str, Decimal], ...]]] = field(
        default_factory=dict
    )
    # Features given away (not billed): the margin report spreads no fee over them.
    included_features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutcomeQuantity:
    """A period's succeeded outcomes of one type, reversed ones excluded."""

    succeeded: int
    # PERCENTAGE only: the sum over billable units (past the included ones) of
    # clamp(value charged × percentage / 100 + fixed fee, floor, cap), the value charged
    # being past the free value: computed in SQL (PERCENTAGE_FEE_SQL), in plan currency.
    value_fees: Decimal = ZERO
    # PERCENTAGE only: the billable units' value, in plan currency (a graduated
    # percentage's tiers rate it).
    value: Decimal = ZERO
    # By dimension only: the billable units per value the prices name ("": any other
    # value, or none), counted in SQL past the included ones.
    by_value: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class PeriodQuantities:
    outcomes: dict[str, OutcomeQuantity] = field(default_factory=dict)
    seats: int = 0
    # USD inference cost per feature ("" for calls without one), priced calls only.
    cost_by_feature: dict[str, Decimal] = field(default_factory=dict)
    # The same per (feature, tier, provider, model): for markups by a property of the call.
    cost_by_call: dict[tuple[str, str, str, str], Decimal] = field(default_factory=dict)
    # Fixed seats changed within the period: seats × days, and the period's days.
    seat_days: int | None = None
    period_days: int = 0


@dataclass(frozen=True, slots=True)
class RatedLine:
    """A line as rating makes it; the close stores it as an RatedLine (a model)."""

    kind: str  # a LineKind
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: int  # minor units of the invoice currency
    # What the line bills, for the margin report (billing/analytics/selectors/margins.py): the
    # outcome type of an outcome line or its late usage and credits, the feature of a
    # pass-through line (None: not a feature's line; "" is the calls without a feature).
    outcome_type: str = ""
    feature: str | None = None
    # Late usage and credits: the invoice of the earlier period they belong to.
    source_invoice_id: int | None = None
    # What the line is of, without its count ("resolution (up to 100)"), and what its
    # quantity counts ("outcome"; "" when the quantity is not a count): the same line of
    # a period rated twice has the same subject (rate_changes pairs lines by it).
    subject: str = ""
    noun: str = ""


@dataclass(frozen=True, slots=True)
class RatedInvoice:
    currency: str
    lines: tuple[RatedLine, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def _line(
    kind: str,
    description: str,
    quantity: Decimal | int,
    unit_price: Decimal,
    currency: str,
    *,
    outcome_type: str = "",
    feature: str | None = None,
    subject: str = "",
    noun: str = "",
) -> RatedLine:
    quantity = Decimal(quantity)
    amount = to_minor_units(quantity * unit_price, currency)
    return RatedLine(
        kind,
        description,
        quantity,
        unit_price,
        amount,
        outcome_type,
        feature,
        subject=subject or description,
        noun=noun,
    )


def _number(value: Decimal) -> str:
    """A price or rate for people: 50, 0.99, 2.5, never 50.000000 or 5E+1."""
    return f"{value.normalize():f}"


def _plural(count: int | Decimal, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


Units = TypeVar("Units", int, Decimal)  # outcomes, or (a graduated percentage's) value


def graduated(quantity: Units, tiers: tuple[Tier, ...]) -> list[tuple[Units, Tier]]:
    """Each unit (or each bit of value) at the price of the tier it falls in: (units in
    tier, tier) pairs."""
    parts = []
    floor = 0
    for tier in tiers:
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if ceiling > floor:
            parts.append((ceiling - floor, tier))
        if tier.up_to is None or tier.up_to >= quantity:
            break
        floor = tier.up_to
    return parts


def volume_tier(quantity: int, tiers: tuple[Tier, ...]) -> Tier:
    """The tier the total reaches: every unit is priced by it."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return tier
    return tiers[-1]


def rate_outcomes(terms: OutcomeTerms, usage: OutcomeQuantity, currency: str) -> list[RatedLine]:
    name = terms.outcome_type
    included = min(usage.succeeded, terms.included_quantity)
    billable = usage.succeeded - included
    lines = []
    if included:
        lines.append(
            _line(
                LineKind.INCLUDED,
                f"{name}: {_plural(included, 'outcome')} included",
                included,
                ZERO,
                currency,
                outcome_type=name,
                subject=f"{name} included",
                noun="outcome",
            )
        )
    if terms.model == PriceModel.PERCENTAGE and terms.tiers:
        return [*lines, *_graduated_percentage(name, terms.tiers, usage.value, currency)]
    if terms.model == PriceModel.PERCENTAGE:
        percentage = terms.percentage or ZERO
        if billable:
            fixed = f" + {_number(terms.fixed_fee)}" if terms.fixed_fee is not None else ""
            clamp = "".join(
                [
                    f", floor {_number(terms.floor)}" if terms.floor is not None else "",
                    f", cap {_number(terms.cap)}" if terms.cap is not None else "",
                ]
            )
            free = (
                f"; the first {_number(terms.free_value)} of value free"
                if terms.free_value is not None
                else ""
            )
            rate = f"{_number(percentage)} % of the value{fixed}"
            lines.append(
                _line(
                    LineKind.OUTCOME,
                    f"{name}: {rate} of {_plural(billable, 'outcome')} (per outcome{clamp}{free})",
                    1,
                    usage.value_fees,
                    currency,
                    outcome_type=name,
                    subject=f"{name}: {rate} (per outcome{clamp}{free})",
                )
            )
        return lines
    if billable == 0:
        return lines
    if terms.dimension:
        return [*lines, *_by_dimension(terms, usage, currency)]
    if terms.tier_mode == TierMode.GRADUATED:
        for units, tier in graduated(billable, terms.tiers):
            upper = f"up to {tier.up_to}" if tier.up_to is not None else "and above"
            lines.append(
                _line(
                    LineKind.OUTCOME,
                    f"{name}: {_plural(units, 'outcome')} ({upper})",
                    units,
                    tier.unit_price or ZERO,
                    currency,
                    outcome_type=name,
                    subject=f"{name} ({upper})",
                    noun="outcome",
                )
            )
            lines.extend(_tier_fee(name, upper, tier, currency))
        return lines
    if terms.tier_mode == TierMode.VOLUME:
        tier = volume_tier(billable, terms.tiers)
        upper = f"up to {tier.up_to}" if tier.up_to is not None else "and above"
        return [
            *lines,
            _line(
                LineKind.OUTCOME,
                f"{name}: {_plural(billable, 'outcome')} (volume tier)",
                billable,
                tier.unit_price or ZERO,
                currency,
                outcome_type=name,
                subject=f"{name} (volume tier)",
                noun="outcome",
            ),
            *_tier_fee(name, f"volume tier {upper}", tier, currency),
        ]
    assert terms.unit_price is not None, "a unit price without tiers needs unit_price"
    if terms.package_size:
        blocks = math.ceil(billable / terms.package_size)
        return [
            *lines,
            _line(
                LineKind.OUTCOME,
                f"{name}: {_plural(billable, 'outcome')} in {_plural(blocks, 'block')} of "
                f"{terms.package_size}",
                blocks,
                terms.unit_price,
                currency,
                outcome_type=name,
                subject=f"{name} in blocks of {terms.package_size}",
                noun="block",
            ),
        ]
    return [
        *lines,
        _line(
            LineKind.OUTCOME,
            f"{name}: {_plural(billable, 'outcome')}",
            billable,
            terms.unit_price,
            currency,
            outcome_type=name,
            subject=name,
            noun="outcome",
        ),
    ]


def _by_dimension(terms: OutcomeTerms, usage: OutcomeQuantity, currency: str) -> list[RatedLine]:
    """A line per distinct price: the billable outcomes of the values it prices (in the
    order the prices are written, any other value last, "other"), at that price. Values
    that share a price share its line, so the lines sum to what one undivided price
    would bill."""
    name, dimension = terms.outcome_type, terms.dimension
    assert terms.unit_price is not None, "a price by dimension has the price of any other"
    counts = dict(usage.by_value)
    by_price: dict[Decimal, tuple[list[str], int]] = {}
    for value, price in (*terms.dimension_prices, ("", terms.unit_price)):
        values, count = by_price.get(price, ([], 0))
        by_price[price] = ([*values, value or "other"], count + counts.get(value, 0))
    lines = []
    for price, (values, count) in by_price.items():
        if not count:
            continue
        group = f"{dimension}: {', '.join(values)}"
        lines.append(
            _line(
                LineKind.OUTCOME,
                f"{name}: {_plural(count, 'outcome')} ({group})",
                count,
                price,
                currency,
                outcome_type=name,
                subject=f"{name} ({group})",
                noun="outcome",
            )
        )
    return lines


def _graduated_percentage(
    name: str, tiers: tuple[Tier, ...], value: Decimal, currency: str
) -> list[RatedLine]:
    """The period's value across percentage tiers: each tier's percentage of the value in
    it (a line each, the value as its quantity), and the flat fee of each tier it reaches
    (its first cent of value in it: a value exactly on a bound stays in the lower tier)."""
    lines = []
    for part, tier in graduated(value, tiers):
        in_tier = Decimal(part)  # (a bound is an int)
        upper = f"up to {tier.up_to}" if tier.up_to is not None else "and above"
        rate = tier.percentage or ZERO
        lines.append(
            _line(
                LineKind.OUTCOME,
                f"{name}: {_number(rate)} % of {_number(in_tier)} of value ({upper})",
                in_tier,
                rate / 100,
                currency,
                outcome_type=name,
                subject=f"{name}: {_number(rate)} % of the value ({upper})",
            )
        )
        lines.extend(_tier_fee(name, upper, tier, currency))
    return lines


def _tier_fee(name: str, which: str, tier: Tier, currency: str) -> list[RatedLine]:
    """The flat fee of a tier the period reached, as a line of its own (none without)."""
    if tier.flat_fee is None:
        return []
    return [
        _line(
            LineKind.TIER_FEE,
            f"{name}: flat fee ({which})",
            1,
            tier.flat_fee,
            currency,
            outcome_type=name,
            subject=f"{name} flat fee ({which})",
        )
    ]


_CALL_DIMENSIONS = {"tier": 1, "provider": 2, "model": 3}  # in cost_by_call's keys


def rate_pass_through(
    plan: PlanTerms,
    cost_by_feature: dict[str, Decimal],
    currency: str,
    cost_by_call: dict[tuple[str, str, str, str], Decimal] | None = None,
) -> list[RatedLine]:
    """Inference cost at cost × (1 + markup): the quantity is the cost itself. A markup by
    a property of the call splits its feature's cost by the call's value: a line per
    distinct markup, naming its values (values that share a markup share a line)."""
    lines = []
    for feature, cost in sorted(cost_by_feature.items()):
        entry = feature if feature in plan.pass_through else ""
        markup = plan.pass_through.get(entry)
        if markup is None or not cost:
            continue
        label = feature or "calls without a feature"
        if entry not in plan.pass_through_by:
            lines.append(_pass_through_line(label, feature, cost, markup, currency))
            continue
        dimension, markups = plan.pass_through_by[entry]
        assert cost_by_call, "a markup by a property of the call is rated on detailed usage"
        of_value = dict(markups)
        split: dict[Decimal, tuple[list[str], Decimal]] = {}
        for value, value_markup in (*markups, ("", markup)):
            split.setdefault(value_markup, ([], ZERO))[0].append(value or "other")
        for key, part in cost_by_call.items():
            if key[0] != feature or not part:
                continue
            value = key[_CALL_DIMENSIONS[dimension]]
            values, total = split[of_value.get(value, markup)]
            split[of_value.get(value, markup)] = (values, total + part)
        for value_markup, (values, part) in split.items():
            if part:
                group = f"{label}; {dimension}: {', '.join(values)}"
                lines.append(_pass_through_line(group, feature, part, value_markup, currency))
    return lines


def _pass_through_line(
    label: str, feature: str, cost: Decimal, markup: Decimal, currency: str
) -> RatedLine:
    return _line(
        LineKind.PASS_THROUGH,
        f"AI usage at cost + {_number(markup * 100)} % ({label})",
        cost,
        1 + markup,
        currency,
        feature=feature,
    )


def rate_period(plan: PlanTerms, usage: PeriodQuantities) -> RatedInvoice:
    """The invoice lines of one period. Failures are never billed (they are not in
    `usage.outcomes[...].succeeded`); a total under the minimum spend gets a top-up."""
    currency = plan.currency
    lines: list[RatedLine] = []
    if plan.base_fee:
        lines.append(_line(LineKind.BASE_FEE, f"{plan.code} base fee", 1, plan.base_fee, currency))
    for terms in plan.outcomes:
        quantity = usage.outcomes.get(terms.outcome_type, OutcomeQuantity(0))
        lines.extend(rate_outcomes(terms, quantity, currency))
    if plan.premium_seat_fee is not None and usage.seat_days is not None:
        # The fee per seat-day, to 12 decimals: off by at most 5e-13 per seat-day.
        per_day = (plan.premium_seat_fee / usage.period_days).quantize(Decimal("1e-12"))
        lines.append(
            _line(
                LineKind.SEATS,
                f"premium seats prorated by day: {usage.seat_days} "
                f"seat-days of {usage.period_days}",
                usage.seat_days,
                per_day,
                currency,
                subject="premium seats prorated by day",
                noun="seat-day",
            )
        )
    elif plan.premium_seat_fee is not None and usage.seats:
        kind = "active premium seat" if plan.seat_mode == SeatMode.ACTIVE else "premium seat"
        lines.append(
            _line(
                LineKind.SEATS,
                _plural(usage.seats, kind),
                usage.seats,
                plan.premium_seat_fee,
                currency,
                subject=f"{kind}s",
                noun=kind,
            )
        )
    lines.extend(
        rate_pass_through(plan, usage.cost_by_feature, currency, cost_by_call=usage.cost_by_call)
    )
    if plan.minimum_spend is not None:
        minimum = to_minor_units(plan.minimum_spend, currency)
        subtotal = sum(line.amount for line in lines)
        if subtotal < minimum:
            top_up = from_minor_units(minimum - subtotal, currency)
            lines.append(
                _line(
                    LineKind.MINIMUM,
                    f"top-up to the minimum spend of {_number(plan.minimum_spend)} {currency}",
                    1,
                    top_up,
                    currency,
                )
            )
    return RatedInvoice(currency, tuple(lines))


# --- late usage and credits ------------------------------------------------------------------


def rate_changes(
    before: RatedInvoice, after: RatedInvoice, *, period: str, source_invoice_id: int | None
) -> list[RatedLine]:
    """Late usage and credits for an earlier period: the period rated as its last invoice
    saw it (`before`) and as it stands now (`after`), line by line. Each line's amount is
    the difference of the two lines' amounts, so that, summed over every invoice that
    carries a part of it, the period is billed exactly as rated once on everything it
    holds: included allowances, tiers, floors and caps, minimum spend and all.

    Lines pair by kind and subject. A count at one unit price changes by a count (`+1
    outcome at 0.99`); a line that is an amount (a percentage of values, the minimum's
    top-up) by its amount; a line whose unit price changed (a volume tier reached) is
    taken back whole and billed anew. Positive changes are late usage, negative ones
    credits (`period` names the source period: "2026-10-01 – 2026-11-01")."""

    def key(line: RatedLine) -> tuple[str, str, str | None, str]:
        return (line.kind, line.outcome_type, line.feature, line.subject)

    old = {key(line): line for line in before.lines}
    changes: list[tuple[RatedLine, Decimal, Decimal, int]] = []  # line, quantity, price, amount
    for line in after.lines:
        was = old.pop(key(line), None)
        if was is None:
            changes.append((line, line.quantity, line.unit_price, line.amount))
        elif was.quantity == line.quantity == 1 and not line.noun:
            changes.append(
                (line, Decimal(1), line.unit_price - was.unit_price, line.amount - was.amount)
            )
        elif was.unit_price == line.unit_price:
            changes.append(
                (line, line.quantity - was.quantity, line.unit_price, line.amount - was.amount)
            )
        else:
            changes.append((was, -was.quantity, was.unit_price, -was.amount))
            changes.append((line, line.quantity, line.unit_price, line.amount))
    changes += [(was, -was.quantity, was.unit_price, -was.amount) for was in old.values()]
    lines = []
    for line, quantity, unit_price, amount in changes:
        if not amount and not (line.noun and quantity):
            continue  # nothing to bill, and no count to tell (an allowance's is told)
        late = amount > 0 or (amount == 0 and quantity > 0)
        what = "late usage from" if late else "credit for"
        count = ""
        if line.noun:
            count = f": {'+' if quantity > 0 else '-'}{_plural(abs(quantity), line.noun)}"
        lines.append(
            RatedLine(
                LineKind.LATE_USAGE if late else LineKind.CREDIT,
                f"{what} {period}: {line.subject}{count}",
                quantity,
                unit_price,
                amount,
                line.outcome_type,
                line.feature,
                source_invoice_id,
                line.subject,
                line.noun,
            )
        )
    return lines
