"""Reads of invoices: the periods due for closing, a customer's invoices, and what
changed about invoiced periods since (late usage, credits)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Max, OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404

from billing.models import (
    Invoice,
    InvoiceLine,
    PlanVersion,
    PriceModel,
    StripeEvent,
    Subscription,
)
from billing.periods import period_after, subscription_period
from billing.rating import (
    OutcomeQuantity,
    SourceAdjustment,
)
from billing.selectors.plans import plan_terms
from billing.selectors.preview import CLAMPED_FEE_SQL
from metering.models import Customer


@dataclass(frozen=True, slots=True)
class DuePeriod:
    customer_id: int
    start: datetime
    end: datetime


def subscription_periods_due(
    *, subscription: Subscription, as_of: datetime, last_end: datetime | None = None
) -> list[DuePeriod]:
    """The subscription's periods not invoiced yet whose grace window has passed by
    `as_of`, oldest first. `last_end`: the end of its last invoiced period, if any (from
    subscriptions_with_last_end)."""
    grace = timedelta(minutes=settings.BILLING_CLOSE_GRACE_MINUTES)
    rules = {"anchor_day": subscription.billing_anchor_day, "timezone": subscription.timezone}
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
    """Every customer's due periods, streamed subscription by subscription (each with the
    end of its last invoice, in the same query)."""
    last_end = Invoice.objects.filter(customer_id=OuterRef("customer_id")).order_by("-period_end")
    subscriptions = Subscription.objects.annotate(
        last_end=Subquery(last_end.values("period_end")[:1])
    ).order_by("pk")
    if customer_external_id is not None:
        subscriptions = subscriptions.filter(customer__external_id=customer_external_id)
    for subscription in subscriptions.iterator(chunk_size=2000):
        yield from subscription_periods_due(
            subscription=subscription, as_of=as_of, last_end=subscription.last_end
        )


def customer_invoices(
    *, customer: Customer, limit: int = 100, offset: int = 0
) -> tuple[list[Invoice], int]:
    """A page of the customer's invoices, newest first, with their lines and plan, and
    how many there are in all."""
    invoices = Invoice.objects.filter(customer=customer)
    page = _with_lines(invoices).order_by("-period_start")[offset : offset + limit]
    return list(page), invoices.count()


def invoice_get(*, invoice_id: int) -> Invoice:
    invoice = _with_lines(Invoice.objects.filter(pk=invoice_id)).first()
    if invoice is None:
        raise Http404(f"No invoice {invoice_id}.")
    return invoice


def _with_lines(invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
    return invoices.select_related("customer", "plan_version__plan").prefetch_related(
        Prefetch("lines", InvoiceLine.objects.select_related("source_invoice"))
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
_CHANGED_VALUE_FEES_SQL = f"""
SELECT coalesce(sum({CLAMPED_FEE_SQL}) FILTER (WHERE late), 0),
       coalesce(sum({CLAMPED_FEE_SQL}) FILTER (WHERE reversed), 0)
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
"""  # noqa: S608 -- built from constants
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


# --- closing many customers at once ----------------------------------------------------------


def last_closes(*, customer_ids: list[int], before: datetime) -> dict[int, datetime]:
    """Each customer's latest close of a period before `before` (customers without one
    are left out)."""
    return dict(
        Invoice.objects.filter(customer_id__in=customer_ids, period_start__lt=before)
        .values("customer_id")
        .annotate(last=Max("closed_at"))
        .values_list("customer_id", "last")
    )


_CHANGED_SINCE_SQL = """
WITH since AS (SELECT * FROM unnest(%(customers)s::bigint[], %(since)s::timestamptz[])
               AS s(customer_id, since))
SELECT DISTINCT o.customer_id FROM outcomes_outcome o JOIN since s USING (customer_id)
WHERE o.succeeded_at < %(start)s
  AND ((o.succeeded_recorded_at > s.since AND o.succeeded_recorded_at <= %(until)s)
       OR (o.reversed_at > s.since AND o.reversed_at <= %(until)s))
UNION
SELECT DISTINCT e.customer_id FROM metering_usageevent e JOIN since s USING (customer_id)
WHERE e."timestamp" < %(start)s AND e.received_at > s.since AND e.received_at <= %(until)s
"""


def customers_with_late_changes(
    *, since: dict[int, datetime], start: datetime, until: datetime
) -> set[int]:
    """The customers with facts about an invoiced period stored after their last close:
    only they need the (per customer) late-usage and credit reads."""
    if not since:
        return set()
    customers = list(since)
    params = {
        "customers": customers,
        "since": [since[c] for c in customers],
        "start": start,
        "until": until,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CHANGED_SINCE_SQL, params)
        return {customer_id for (customer_id,) in cursor.fetchall()}


def invoices_unreconciled(*, limit: int) -> list[int]:
    """Invoices whose margin breakdown is not made yet (its task was lost, or they were
    closed by an older payback), oldest first."""
    return list(
        Invoice.objects.filter(reconciliation__breakdown_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def invoices_push_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Invoices made before `before` and still waiting for their first push."""
    return list(
        Invoice.objects.filter(push_state="pending", push_attempts=0, created_at__lt=before)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def stripe_events_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Verified Stripe events received before `before` and not processed."""
    return list(
        StripeEvent.objects.filter(processed_at__isnull=True, received_at__lt=before)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
