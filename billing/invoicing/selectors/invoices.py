"""Reads of invoices: the periods due for closing, and a customer's invoices."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404

from billing.invoicing.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from billing.plans.models import Subscription
from billing.plans.periods import period_after, subscription_period
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
        Prefetch("lines", InvoiceLine.objects.select_related("source_invoice")),
        Prefetch(
            "credit_notes",
            CreditNote.objects.prefetch_related(
                Prefetch("lines", CreditNoteLine.objects.select_related("invoice_line", "outcome"))
            ),
        ),
    )


def invoice_credit_notes(*, invoice: Invoice) -> list[CreditNote]:
    """The invoice's credit notes, in their order, with their lines."""
    return list(
        CreditNote.objects.filter(invoice=invoice).prefetch_related(
            Prefetch("lines", CreditNoteLine.objects.select_related("invoice_line", "outcome"))
        )
    )
