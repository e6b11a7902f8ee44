"""A customer's page in the admin: its plan and subscription, the running period's preview
and margin so far, its invoices, margin by outcome type, model and feature over its last
periods, the cost per success period by period, its alerts and its credits. Read from the
same selectors the API and the dashboard use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from billing.analytics.selectors.margins import (
    PERIOD,
    MarginFilters,
    MarginReport,
    MarginRow,
    margins_report,
    period_key,
    periods_economics,
)
from billing.credits.selectors import CreditBalance, customer_balances
from billing.invoicing.models import Invoice
from billing.invoicing.selectors import (
    InvoicePreview,
    RatedPeriod,
    customer_invoices,
    invoice_preview,
)
from billing.plans.models import PlanVersion, Subscription
from billing.plans.periods import period_after, subscription_period
from billing.plans.selectors import period_of, plan_version_current, subscription_of
from metering.models import Customer

PERIODS = 6  # the running one and the five before it


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    start: datetime
    end: datetime
    closed: bool
    figures: MarginRow  # the customer's revenue, cost, margin and outcomes in the period


@dataclass(slots=True)
class CustomerEconomics:
    customer: Customer
    subscription: Subscription | None
    version: PlanVersion | None
    preview: InvoicePreview | None
    invoices: list[Invoice]
    periods: list[PeriodFigures] = field(default_factory=list)  # oldest first
    by: dict[str, MarginReport] = field(default_factory=dict)  # outcome_type, model, feature
    alerts: list[Any] = field(default_factory=list)
    credits: list[CreditBalance] = field(default_factory=list)


def customer_economics(*, customer: Customer, now: datetime) -> CustomerEconomics:
    subscription = subscription_of(customer=customer)
    version = None if subscription is None else plan_version_current(plan_id=subscription.plan_id)
    running = None if subscription is None else period_of(subscription=subscription, moment=now)
    invoices, _ = customer_invoices(customer=customer, limit=12)
    invoiced = {invoice.period_start for invoice in invoices if invoice.replaced_by_id is None}
    # The running period rated once: the preview, and its margin in the reports below.
    preview = invoice_preview(customer=customer, moment=now, detail=True)
    rated = (
        {}
        if preview is None or preview.period is None
        else {(customer.pk, preview.start): preview.period}
    )
    windows = [] if subscription is None else _last_periods(subscription, now)
    periods, by = _period_reports(customer, windows, now, rated)
    return CustomerEconomics(
        customer=customer,
        subscription=subscription,
        version=version,
        preview=preview,
        invoices=invoices,
        periods=[
            PeriodFigures(start, end, start in invoiced, figures) for start, end, figures in periods
        ],
        by=by,
        alerts=import_string(settings.CUSTOMER_ALERTS)(external_id=customer.external_id),
        credits=(
            []
            if running is None
            else customer_balances(customer_id=customer.pk, start=running[0], end=running[1])
        ),
    )


def _period_reports(
    customer: Customer,
    windows: list[tuple[datetime, datetime]],
    now: datetime,
    rated: dict[tuple[int, datetime], RatedPeriod],
) -> tuple[list[tuple[datetime, datetime, MarginRow]], dict[str, MarginReport]]:
    """The customer's figures in each period (oldest first), and over all of them by
    outcome type, model and feature: four reports, whatever the number of periods."""
    if not windows:
        return [], {}
    one = MarginFilters(customer=customer.external_id)
    first, last = windows[0][0], windows[-1][1]
    # Its open periods rated once, for every report below.
    economics = periods_economics(
        start=first, end=last, now=now, customer=one.customer, rated=rated
    )

    def report(start: datetime, end: datetime, group_by: str) -> MarginReport:
        return margins_report(
            start=start, end=end, group_by=group_by, filters=one, now=now, economics=economics
        )

    by_period = {row.key: row for row in report(first, last, PERIOD).rows}
    periods = [
        (
            start,
            end,
            by_period.get(period_key(start))
            or MarginRow(key=period_key(start), succeeded=0, failed=0, reversed=0),
        )
        for start, end in windows
    ]
    by = {
        group_by: report(first, last, group_by) for group_by in ("outcome_type", "model", "feature")
    }
    return periods, by


def _last_periods(subscription: Subscription, now: datetime) -> list[tuple[datetime, datetime]]:
    """The subscription's last PERIODS periods up to the one holding `now`, oldest first."""
    rules = {"anchor_day": subscription.billing_anchor_day, "timezone": subscription.timezone}
    start, end = subscription_period(
        subscription.started_at, started_at=subscription.started_at, **rules
    )
    periods: list[tuple[datetime, datetime]] = []
    while start <= now:
        periods = [*periods[-(PERIODS - 1) :], (start, end)]
        start, end = period_after(end, **rules)
    return periods
