"""Reads of the billing app: a plan's terms, a period's quantities (SQL aggregates over
metering and outcomes), the invoice preview and the margin."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone as django_timezone

from billing.models import (
    Invoice,
    PlanChange,
    PlanVersion,
    PriceModel,
    SeatChange,
    Subscription,
    TierMode,
)
from billing.money import from_minor_units
from billing.periods import period_after, subscription_period
from billing.rating import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    RatedInvoice,
    SourceAdjustment,
    Tier,
    rate_period,
)
from billing.schemas import OutcomePriceDoc, PassThroughDoc, PlanDoc, TierDoc
from metering.models import Customer
from metering.selectors import CustomerUsage

DEFAULT_REVERSAL_WINDOW = timedelta(days=7)
INFERENCE_COST_CURRENCY = "USD"


def subscription_of(*, customer: Customer) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(customer=customer).first()


def plan_version_current(*, plan_id: int) -> PlanVersion | None:
    """The newest version of a plan: the one its customers are billed on."""
    return (
        PlanVersion.objects.filter(plan_id=plan_id)
        .select_related("plan")
        .prefetch_related("outcome_prices__tiers", "pass_throughs")
        .order_by("-version")
        .first()
    )


def plan_document(version: PlanVersion) -> PlanDoc:
    """A stored plan version as a document: what GET /v1/plans shows, and what a loaded
    document is compared with to tell whether it changes anything."""
    return PlanDoc(
        code=version.plan.code,
        name=version.plan.name,
        currency=version.currency,
        base_fee=version.base_fee,
        minimum_spend=version.minimum_spend,
        premium_seat_fee=version.premium_seat_fee,
        seat_mode=version.seat_mode,  # type: ignore[arg-type]
        reversal_window_days=version.reversal_window_days,
        collection_method=version.collection_method,  # type: ignore[arg-type]
        days_until_due=version.days_until_due,
        outcomes=[
            OutcomePriceDoc(
                type=price.outcome_type,
                unit_price=price.unit_price,
                percentage=price.percentage,
                floor=price.floor,
                cap=price.cap,
                included=price.included_quantity,
                tier_mode=None if price.tier_mode == TierMode.NONE else price.tier_mode,  # type: ignore[arg-type]
                tiers=[TierDoc(unit_price=t.unit_price, up_to=t.up_to) for t in price.tiers.all()]
                or None,
                package_size=price.package_size,
            )
            for price in version.outcome_prices.all()
        ],
        token_pass_through=[
            PassThroughDoc(markup=p.markup, feature=p.feature) for p in version.pass_throughs.all()
        ],
    )


def plan_terms(*, version: PlanVersion) -> PlanTerms:
    """What rating needs of a plan version, read through its document (one mapping from
    the tables, in plan_document)."""
    doc = plan_document(version)
    return PlanTerms(
        code=doc.code,
        version=version.version,
        currency=doc.currency,
        base_fee=doc.base_fee,
        minimum_spend=doc.minimum_spend,
        premium_seat_fee=doc.premium_seat_fee,
        seat_mode=doc.seat_mode,
        reversal_window_days=doc.reversal_window_days,
        outcomes=tuple(
            OutcomeTerms(
                outcome_type=price.type,
                model=PriceModel.PERCENTAGE if price.percentage is not None else PriceModel.UNIT,
                unit_price=price.unit_price,
                percentage=price.percentage,
                floor=price.floor,
                cap=price.cap,
                included_quantity=price.included,
                tier_mode=price.tier_mode or TierMode.NONE,
                tiers=tuple(Tier(t.up_to, t.unit_price) for t in price.tiers or ()),
                package_size=price.package_size,
            )
            for price in sorted(doc.outcomes, key=lambda price: price.type)
        ),
        pass_through={p.feature: p.markup for p in doc.token_pass_through},
    )


def plan_in_effect(*, subscription: Subscription, moment: datetime) -> int:
    """The id of the plan the subscription is billed on at `moment`."""
    change = (
        PlanChange.objects.filter(subscription=subscription, effective_from__lte=moment)
        .order_by("-effective_from")
        .values_list("plan_id", flat=True)
        .first()
    )
    return change if change is not None else subscription.plan_id


def plan_change_pending(*, subscription: Subscription, now: datetime) -> PlanChange | None:
    return (
        PlanChange.objects.filter(subscription=subscription, effective_from__gt=now)
        .select_related("plan")
        .order_by("effective_from")
        .first()
    )


def seats_at(*, subscription: Subscription, moment: datetime) -> int:
    """Fixed premium seats in effect at `moment`."""
    change = (
        SeatChange.objects.filter(subscription=subscription, effective_at__lte=moment)
        .order_by("-effective_at", "-pk")
        .values_list("seats", flat=True)
        .first()
    )
    return change if change is not None else subscription.premium_seats


@dataclass(frozen=True, slots=True)
class FixedSeats:
    seats: int  # in effect at the end of the period
    # Set when the seats changed during the period: seats × days, a change counting from
    # the day it was made (in the customer's timezone), and the period's days.
    seat_days: int | None
    period_days: int


def fixed_seats(*, subscription: Subscription, start: datetime, end: datetime) -> FixedSeats:
    """A period's fixed seats, prorated by day when they changed within it."""
    zone = ZoneInfo(subscription.timezone)
    first_day, last_day = start.astimezone(zone).date(), end.astimezone(zone).date()
    period_days = (last_day - first_day).days
    changes = list(
        SeatChange.objects.filter(
            subscription=subscription, effective_at__gt=start, effective_at__lt=end
        )
        .order_by("effective_at", "pk")
        .values_list("effective_at", "seats")
    )
    seats = seats_at(subscription=subscription, moment=start)
    if not changes:
        return FixedSeats(seats, None, period_days)
    seat_days, day = 0, first_day
    for effective_at, new_seats in changes:
        change_day = min(effective_at.astimezone(zone).date(), last_day)
        seat_days += seats * (change_day - day).days
        day, seats = max(day, change_day), new_seats
    seat_days += seats * (last_day - day).days
    return FixedSeats(seats, seat_days, period_days)


def customer_plan_terms(
    *, customer: Customer, moment: datetime | None = None
) -> tuple[Subscription | None, PlanTerms | None]:
    """The customer's subscription and the terms of the plan in effect at `moment`
    (default now)."""
    subscription = subscription_of(customer=customer)
    if subscription is None:
        return None, None
    plan_id = plan_in_effect(subscription=subscription, moment=moment or django_timezone.now())
    version = plan_version_current(plan_id=plan_id)
    return subscription, (plan_terms(version=version) if version else None)


def reversal_window(*, customer: Customer) -> timedelta:
    """How long after its success an outcome of this customer may be reversed."""
    _, terms = customer_plan_terms(customer=customer)
    return timedelta(days=terms.reversal_window_days) if terms else DEFAULT_REVERSAL_WINDOW


# Outcomes succeeded in [start, end) as of the moment `as_of`: stored by then, and not
# reversed by then (a later reversal is a credit on a later invoice).
_SUCCEEDED_AS_OF = """
    customer_id = %(customer)s AND succeeded_at >= %(start)s AND succeeded_at < %(end)s
    AND succeeded_recorded_at <= %(as_of)s
    AND (status = 'succeeded' OR (status = 'reversed' AND reversed_at > %(as_of)s))
"""
_SUCCEEDED_SQL = (
    f"SELECT type, count(*) FROM outcomes_outcome WHERE {_SUCCEEDED_AS_OF} GROUP BY type"  # noqa: S608
)
# Value fees of one percentage-priced type: each billable unit (past the included ones,
# in order of success) at value × percentage / 100, clamped to [floor, cap]. GREATEST and
# LEAST skip NULLs, so a missing floor or cap is no bound, and a unit without a value
# (or with a value in another currency) pays the floor.
_VALUE_FEES_SQL = f"""
SELECT coalesce(sum(LEAST(GREATEST(fee, %(floor)s), %(cap)s)), 0) FROM (
    SELECT CASE WHEN value_currency = %(currency)s THEN value * %(percentage)s / 100 END AS fee,
           row_number() OVER (ORDER BY succeeded_at, id) AS position
    FROM outcomes_outcome
    WHERE type = %(type)s AND {_SUCCEEDED_AS_OF}
) AS units
WHERE position > %(included)s
"""  # noqa: S608 -- built from constants


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
    """What rating needs of [start, end): succeeded outcomes per type (by time of
    success; reversed ones are no longer succeeded) and seats. The inference cost per
    feature and the active seats come from the caller, who has them from the usage
    aggregates already."""
    window = {"customer": customer.pk, "start": start, "end": end, "as_of": as_of}
    with connection.cursor() as cursor:
        cursor.execute(_SUCCEEDED_SQL, window)
        succeeded = dict(cursor.fetchall())
        outcomes: dict[str, OutcomeQuantity] = {}
        for outcome in terms.outcomes:
            count = succeeded.get(outcome.outcome_type, 0)
            fees = Decimal(0)
            if outcome.model == PriceModel.PERCENTAGE and count > outcome.included_quantity:
                cursor.execute(
                    _VALUE_FEES_SQL,
                    window
                    | {
                        "type": outcome.outcome_type,
                        "currency": terms.currency,
                        "percentage": outcome.percentage,
                        "floor": outcome.floor,
                        "cap": outcome.cap,
                        "included": outcome.included_quantity,
                    },
                )
                fees = cursor.fetchone()[0]
            outcomes[outcome.outcome_type] = OutcomeQuantity(count, fees)
    if terms.seat_mode == "active":
        return PeriodQuantities(
            outcomes=outcomes, seats=active_seats, cost_by_feature=cost_by_feature
        )
    fixed = fixed_seats(subscription=subscription, start=start, end=end)
    return PeriodQuantities(
        outcomes=outcomes,
        seats=fixed.seats,
        cost_by_feature=cost_by_feature,
        seat_days=fixed.seat_days,
        period_days=fixed.period_days,
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
class DuePeriod:
    customer_id: int
    start: datetime
    end: datetime


def subscription_periods_due(*, subscription: Subscription, as_of: datetime) -> list[DuePeriod]:
    """The subscription's periods not invoiced yet whose grace window has passed by
    `as_of`, oldest first."""
    grace = timedelta(minutes=settings.BILLING_CLOSE_GRACE_MINUTES)
    rules = {"anchor_day": subscription.billing_anchor_day, "timezone": subscription.timezone}
    last_end = (
        Invoice.objects.filter(customer_id=subscription.customer_id)
        .order_by("-period_end")
        .values_list("period_end", flat=True)
        .first()
    )
    if last_end is None:
        start, end = subscription_period(
            subscription.started_at, started_at=subscription.started_at, **rules
        )
    else:
        start, end = period_after(last_end, **rules)
    due = []
    while end + grace <= as_of:
        due.append(DuePeriod(subscription.customer_id, start, end))
        start, end = period_after(end, **rules)
    return due


def periods_due(*, as_of: datetime, customer_external_id: str | None = None) -> Iterator[DuePeriod]:
    """Every customer's due periods, streamed subscription by subscription."""
    subscriptions = Subscription.objects.order_by("pk")
    if customer_external_id is not None:
        subscriptions = subscriptions.filter(customer__external_id=customer_external_id)
    for subscription in subscriptions.iterator(chunk_size=500):
        yield from subscription_periods_due(subscription=subscription, as_of=as_of)


def customer_invoices(*, customer: Customer, limit: int = 100) -> list[Invoice]:
    """The customer's newest invoices, with their lines and plan."""
    return list(
        Invoice.objects.filter(customer=customer)
        .select_related("plan_version__plan")
        .prefetch_related("lines")
        .order_by("-period_start")[:limit]
    )


# Outcomes of earlier, invoiced periods that changed since the last close: successes
# stored late (to bill), reversals of billed successes (to credit), and how many units
# each period has billed so far (their place in the tiers). A success belongs to the
# invoice whose period holds its succeeded_at.
_OUTCOME_CHANGES_SQL = """
SELECT i.id, o.type,
       count(*) FILTER (WHERE o.status = 'succeeded' AND o.succeeded_recorded_at > %(since)s
                        AND o.succeeded_recorded_at <= %(until)s) AS late,
       count(*) FILTER (WHERE o.status = 'reversed' AND o.reversed_at > %(since)s
                        AND o.reversed_at <= %(until)s
                        AND o.succeeded_recorded_at <= %(since)s) AS reversed,
       count(*) FILTER (WHERE o.succeeded_recorded_at <= %(since)s
                        AND (o.status = 'succeeded' OR o.reversed_at > %(since)s)) AS billed
FROM outcomes_outcome o
JOIN billing_invoice i ON i.customer_id = o.customer_id
     AND o.succeeded_at >= i.period_start AND o.succeeded_at < i.period_end
WHERE o.customer_id = %(customer)s AND o.succeeded_at < %(start)s
GROUP BY i.id, o.type
"""
# The same units' percentage fees, for one source invoice and type.
_CHANGED_VALUE_FEES_SQL = """
SELECT coalesce(sum(LEAST(GREATEST(fee, %(floor)s), %(cap)s)) FILTER (WHERE late), 0),
       coalesce(sum(LEAST(GREATEST(fee, %(floor)s), %(cap)s)) FILTER (WHERE reversed), 0)
FROM (
    SELECT CASE WHEN o.value_currency = %(currency)s THEN o.value * %(percentage)s / 100 END
               AS fee,
           o.status = 'succeeded' AND o.succeeded_recorded_at > %(since)s
               AND o.succeeded_recorded_at <= %(until)s AS late,
           o.status = 'reversed' AND o.reversed_at > %(since)s AND o.reversed_at <= %(until)s
               AND o.succeeded_recorded_at <= %(since)s AS reversed
    FROM outcomes_outcome o JOIN billing_invoice i ON i.id = %(invoice)s
    WHERE o.customer_id = %(customer)s AND o.type = %(type)s
      AND o.succeeded_at >= i.period_start AND o.succeeded_at < i.period_end
) AS units
"""
# Calls that arrived after the last close for an earlier, invoiced period.
_LATE_CALLS_SQL = """
SELECT i.id, e.feature, sum(e.cost)
FROM metering_usageevent e
JOIN billing_invoice i ON i.customer_id = e.customer_id
     AND e."timestamp" >= i.period_start AND e."timestamp" < i.period_end
WHERE e.customer_id = %(customer)s AND e.received_at > %(since)s AND e.received_at <= %(until)s
  AND e."timestamp" < %(start)s AND e.cost IS NOT NULL
GROUP BY i.id, e.feature
"""


def late_adjustments(
    *, customer: Customer, period_start: datetime, since: datetime, until: datetime
) -> list[tuple[Invoice, SourceAdjustment]]:
    """What changed about earlier invoiced periods between the last close (`since`) and
    this one (`until`), per source invoice."""
    window = {"customer": customer.pk, "start": period_start, "since": since, "until": until}
    with connection.cursor() as cursor:
        cursor.execute(_OUTCOME_CHANGES_SQL, window)
        outcome_rows = [row for row in cursor.fetchall() if row[2] or row[3]]
        cursor.execute(_LATE_CALLS_SQL, window)
        call_rows = cursor.fetchall()
    invoice_ids = {row[0] for row in outcome_rows} | {row[0] for row in call_rows}
    if not invoice_ids:
        return []
    invoices = Invoice.objects.filter(pk__in=invoice_ids).select_related("plan_version__plan")
    adjustments = []
    for invoice in sorted(invoices, key=lambda i: i.period_start):
        terms = plan_terms(version=plan_version_of(invoice))
        by_type = {t.outcome_type: t for t in terms.outcomes}
        billed: dict[str, int] = {}
        late: dict[str, OutcomeQuantity] = {}
        reversed_: dict[str, OutcomeQuantity] = {}
        for invoice_id, outcome_type, late_count, reversed_count, billed_count in outcome_rows:
            if invoice_id != invoice.pk or outcome_type not in by_type:
                continue
            outcome = by_type[outcome_type]
            billed[outcome_type] = max(0, billed_count - outcome.included_quantity)
            late_fees = reversed_fees = Decimal(0)
            if outcome.model == PriceModel.PERCENTAGE:
                with connection.cursor() as cursor:
                    cursor.execute(
                        _CHANGED_VALUE_FEES_SQL,
                        window
                        | {
                            "invoice": invoice.pk,
                            "type": outcome_type,
                            "currency": terms.currency,
                            "percentage": outcome.percentage,
                            "floor": outcome.floor,
                            "cap": outcome.cap,
                        },
                    )
                    late_fees, reversed_fees = cursor.fetchone()
            late[outcome_type] = OutcomeQuantity(late_count, late_fees)
            reversed_[outcome_type] = OutcomeQuantity(reversed_count, reversed_fees)
        late_cost = {
            feature: cost for invoice_id, feature, cost in call_rows if invoice_id == invoice.pk
        }
        label = f"{invoice.period_start:%Y-%m-%d} – {invoice.period_end:%Y-%m-%d}"
        adjustments.append(
            (invoice, SourceAdjustment(label, terms, billed, late, reversed_, late_cost))
        )
    return adjustments


def plan_version_of(invoice: Invoice) -> PlanVersion:
    """The plan version an invoice was rated on, with its prices loaded."""
    return (
        PlanVersion.objects.select_related("plan")
        .prefetch_related("outcome_prices__tiers", "pass_throughs")
        .get(pk=invoice.plan_version_id)
    )
