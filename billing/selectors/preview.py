"""The invoice a period would make (SQL aggregates over metering and outcomes, rated
by billing/rating.py) and its margin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

from billing.models import (
    PlanVersion,
    PriceModel,
    Subscription,
)
from billing.money import from_minor_units
from billing.rating import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    RatedInvoice,
    rate_period,
)
from billing.selectors.cells import PeriodUsage, windows_usage
from billing.selectors.plans import (
    FixedSeats,
    customer_plan_terms,
    fixed_seats_many,
    plan_terms,
    plan_version_current,
    plans_in_effect,
)
from metering.models import Customer
from metering.selectors import CustomerUsage

INFERENCE_COST_CURRENCY = "USD"


# Outcomes succeeded in [start, end) as of the moment `as_of`: stored by then, and not
# reversed by then (a later reversal is a credit on a later invoice).
_SUCCEEDED_AS_OF = """
    customer_id = ANY(%(customers)s) AND succeeded_at >= %(start)s AND succeeded_at < %(end)s
    AND succeeded_recorded_at <= %(as_of)s
    AND (status = 'succeeded' OR (status = 'reversed' AND reversed_at > %(as_of)s))
"""
_SUCCEEDED_SQL = (
    "SELECT customer_id, type, count(*) FROM outcomes_outcome "  # noqa: S608 -- constants
    f"WHERE {_SUCCEEDED_AS_OF} GROUP BY customer_id, type"
)
# The fee of one unit of a percentage price: value × percentage / 100 (`fee`) clamped to
# [floor, cap]; a unit without a value pays the floor, or nothing without one. GREATEST
# and LEAST skip NULLs, which makes a missing floor or cap no bound, but would also make
# LEAST(NULL, cap) the cap: hence the CASE. The one clamp of preview, close and late usage.
CLAMPED_FEE_SQL = """CASE WHEN fee IS NULL THEN coalesce(%(floor)s, 0)
     ELSE LEAST(GREATEST(fee, %(floor)s), %(cap)s) END"""
# Value fees of one percentage-priced type: each billable unit (past the included ones,
# in order of success, per customer) at its clamped fee. A value in another currency is
# no value.
_VALUE_FEES_SQL = f"""
SELECT customer_id, coalesce(sum({CLAMPED_FEE_SQL}), 0) FROM (
    SELECT customer_id,
           CASE WHEN value_currency = %(currency)s THEN value * %(percentage)s / 100 END AS fee,
           row_number() OVER (PARTITION BY customer_id ORDER BY succeeded_at, id) AS position
    FROM outcomes_outcome
    WHERE type = %(type)s AND {_SUCCEEDED_AS_OF}
) AS units
WHERE position > %(included)s
GROUP BY customer_id
"""  # noqa: S608 -- built from constants


def outcome_quantities(
    *, terms_by_customer: dict[int, PlanTerms], start: datetime, end: datetime, as_of: datetime
) -> dict[int, dict[str, OutcomeQuantity]]:
    """Succeeded outcomes per customer and type in [start, end) as of `as_of`, and the
    value fees of percentage-priced types: one query for the counts, one per percentage
    price shared by customers, whatever their number."""
    window = {"customers": list(terms_by_customer), "start": start, "end": end, "as_of": as_of}
    quantities: dict[int, dict[str, OutcomeQuantity]] = {c: {} for c in terms_by_customer}
    with connection.cursor() as cursor:
        cursor.execute(_SUCCEEDED_SQL, window)
        for customer_id, outcome_type, count in cursor.fetchall():
            quantities[customer_id][outcome_type] = OutcomeQuantity(count)
        # Customers sharing one percentage price get one query.
        shared: dict[tuple[str, OutcomeTerms], list[int]] = {}
        for customer_id, terms in terms_by_customer.items():
            for outcome in terms.outcomes:
                count = quantities[customer_id].get(outcome.outcome_type, OutcomeQuantity(0))
                if (
                    outcome.model == PriceModel.PERCENTAGE
                    and count.succeeded > outcome.included_quantity
                ):
                    shared.setdefault((terms.currency, outcome), []).append(customer_id)
        for (currency, outcome), customers in shared.items():
            cursor.execute(
                _VALUE_FEES_SQL,
                window
                | {
                    "customers": customers,
                    "type": outcome.outcome_type,
                    "currency": currency,
                    "percentage": outcome.percentage,
                    "floor": outcome.floor,
                    "cap": outcome.cap,
                    "included": outcome.included_quantity,
                },
            )
            for customer_id, fees in cursor.fetchall():
                count = quantities[customer_id][outcome.outcome_type].succeeded
                quantities[customer_id][outcome.outcome_type] = OutcomeQuantity(count, fees)
    return quantities


def rating_quantities(
    *,
    terms: PlanTerms,
    outcomes: dict[str, OutcomeQuantity],
    cost_by_feature: dict[str, Decimal],
    active_seats: int,
    fixed: FixedSeats | None,
) -> PeriodQuantities:
    """What rating needs of one customer's period, from the aggregates read for it
    (`fixed` may be left out for a plan that bills active seats)."""
    if terms.seat_mode == "active":
        return PeriodQuantities(
            outcomes=outcomes, seats=active_seats, cost_by_feature=cost_by_feature
        )
    assert fixed is not None, "a plan with fixed seats needs them"
    return PeriodQuantities(
        outcomes=outcomes,
        seats=fixed.seats,
        cost_by_feature=cost_by_feature,
        seat_days=fixed.seat_days,
        period_days=fixed.period_days,
    )


def period_quantities(
    *,
    customer: Customer,
    subscription: Subscription,
    terms: PlanTerms,
    start: datetime,
    end: datetime,
    cost_by_feature: dict[str, Decimal],
    active_seats: int,
    as_of: datetime,
) -> PeriodQuantities:
    """What rating needs of one customer's [start, end): succeeded outcomes per type (by
    time of success; reversed ones are no longer succeeded) and seats. The inference cost
    per feature and the active seats come from the caller, who has them from the usage
    aggregates already."""
    outcomes = outcome_quantities(
        terms_by_customer={customer.pk: terms}, start=start, end=end, as_of=as_of
    )[customer.pk]
    fixed = (
        None
        if terms.seat_mode == "active"
        else fixed_seats_many(subscriptions=[subscription], start=start, end=end)[subscription.pk]
    )
    return rating_quantities(
        terms=terms,
        outcomes=outcomes,
        cost_by_feature=cost_by_feature,
        active_seats=active_seats,
        fixed=fixed,
    )


@dataclass(frozen=True, slots=True)
class Margin:
    revenue: Decimal  # in the invoice currency
    inference_cost: Decimal  # USD, every priced call of the period
    currency: str
    # Comparable only when the invoice is in USD, until FX rates exist: a margin across
    # currencies would be a wrong number, so there is none.
    comparable: bool
    margin: Decimal | None
    margin_percent: Decimal | None
    unpriced_calls: int


def margin_of(*, invoice: RatedInvoice, inference_cost: Decimal, unpriced_calls: int) -> Margin:
    revenue = from_minor_units(invoice.total, invoice.currency)
    if invoice.currency != INFERENCE_COST_CURRENCY:
        return Margin(revenue, inference_cost, invoice.currency, False, None, None, unpriced_calls)
    margin = revenue - inference_cost
    percent = (margin / revenue * 100).quantize(Decimal("0.01")) if revenue else None
    return Margin(revenue, inference_cost, invoice.currency, True, margin, percent, unpriced_calls)


@dataclass(frozen=True, slots=True)
class InvoicePreview:
    terms: PlanTerms
    invoice: RatedInvoice
    margin: Margin


def invoice_preview(
    *, usage: CustomerUsage, active_seats: int, as_of: datetime
) -> InvoicePreview | None:
    """The invoice the usage's window would make on the customer's plan, as known at
    `as_of`, and its margin; None without a plan. `usage` and `active_seats` are to be
    read as of the same moment."""
    subscription, terms = customer_plan_terms(customer=usage.customer, moment=usage.start)
    if subscription is None or terms is None:
        return None
    cost_by_feature = {
        feature: totals.cost for feature, totals in usage.by_feature if totals.cost is not None
    }
    quantities = period_quantities(
        customer=usage.customer,
        subscription=subscription,
        terms=terms,
        start=usage.start,
        end=usage.end,
        cost_by_feature=cost_by_feature,
        active_seats=active_seats,
        as_of=as_of,
    )
    invoice = rate_period(terms, quantities)
    margin = margin_of(
        invoice=invoice,
        inference_cost=usage.totals.cost or Decimal(0),
        unpriced_calls=usage.totals.unpriced_calls,
    )
    return InvoicePreview(terms, invoice, margin)


@dataclass(frozen=True, slots=True)
class RatedPeriod:
    subscription: Subscription
    version: PlanVersion
    terms: PlanTerms
    usage: PeriodUsage  # the period's calls in cells, and its active seats
    invoice: RatedInvoice  # the period's own lines: no late usage or credits


def periods_rate(
    *,
    subscriptions: list[Subscription],
    start: datetime,
    end: datetime,
    as_of: datetime,
    detail: bool = False,
) -> list[RatedPeriod]:
    """The invoices of many customers' [start, end) as known at `as_of`, each on the plan
    in effect at `start`: a fixed number of queries, whatever the number of customers.
    What a close bills, and (with the calls in `detail`: by outcome type, feature, tier and
    model) what the margin report computes live for open periods."""
    plan_ids = plans_in_effect(subscriptions=subscriptions, moment=start)
    versions = {
        plan_id: plan_version_current(plan_id=plan_id) for plan_id in set(plan_ids.values())
    }
    terms = {
        plan_id: plan_terms(version=version) for plan_id, version in versions.items() if version
    }
    terms_by_customer = {s.customer_id: terms[plan_ids[s.pk]] for s in subscriptions}
    usage = windows_usage(
        windows=[(customer_id, start, end) for customer_id in terms_by_customer],
        as_of=as_of,
        detail=detail,
    )
    outcomes = outcome_quantities(
        terms_by_customer=terms_by_customer, start=start, end=end, as_of=as_of
    )
    seats = fixed_seats_many(subscriptions=subscriptions, start=start, end=end)
    rated = []
    for subscription in subscriptions:
        customer_id = subscription.customer_id
        used = usage[(customer_id, start)]
        quantities = rating_quantities(
            terms=terms_by_customer[customer_id],
            outcomes=outcomes[customer_id],
            cost_by_feature=used.cost_by_feature,
            active_seats=used.active_seats,
            fixed=seats[subscription.pk],
        )
        version = versions[plan_ids[subscription.pk]]
        assert version is not None, "a subscribed plan has a version"
        rated.append(
            RatedPeriod(
                subscription,
                version,
                terms_by_customer[customer_id],
                used,
                rate_period(terms_by_customer[customer_id], quantities),
            )
        )
    return rated
