"""The operator's cockpit in the admin: the unit-economics dashboard (headline figures
against the previous window, the margin waterfall, charts, the margin table and its CSV)
and a page per customer. Staff with the analytics permission only (each view checks; they
are wrapped in admin_view in config/urls.py). Thin: the figures come from the selectors,
the formatting from formatting.py."""

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.analytics.formatting import OperatorFormat
from billing.analytics.forms import FILTERS, TABLE_COLUMNS, TABLE_PAGE, DashboardWindowForm
from billing.analytics.selectors.customers import customer_economics
from billing.analytics.selectors.dashboard import (
    Headline,
    WaterfallStep,
    dashboard_page,
)
from billing.analytics.selectors.margins import MarginRow, margins_report
from billing.money import from_minor_units
from common.exports import SafeCsvWriter
from common.replicas import replica_reads
from metering.models import Customer

# --- the unit-economics dashboard (staff only: wrapped in admin_view in config/urls.py) ----

MARGIN_COLUMNS = (
    "key",
    "revenue",
    "inference_cost",
    "cost_status",
    "margin",
    "margin_percent",
    "calls",
    "tokens",
    "unpriced_calls",
    "succeeded",
    "failed",
    "reversed",
    "cost_per_success",
    "missing_rates",
    "written_off",
    "discount",
)


def _margin_cells(row: MarginRow) -> list[Any]:
    missing = " ".join(f"{m.currency}@{m.at:%Y-%m-%d}" for m in sorted(row.missing_rates, key=str))
    values = {
        "key": row.key,
        # Unknown (every call unpriced) is empty, never 0; cost_status says which.
        "inference_cost": row.known_cost,
        "cost_status": row.cost_status.value,
        "margin": row.margin,
        "margin_percent": row.margin_percent,
        "cost_per_success": row.cost_per_success,
        "missing_rates": missing,
    }
    cells = [values[c] if c in values else getattr(row, c) for c in MARGIN_COLUMNS]
    return [f"{cell.normalize():f}" if isinstance(cell, Decimal) else cell for cell in cells]


def _window_form(request: HttpRequest) -> DashboardWindowForm:
    return DashboardWindowForm(request.GET, today=timezone.now().date())


ANALYTICS_PERMISSION = "analytics.view_analytics"


KEY_HEADINGS = {
    "customer": "Customer",
    "outcome_type": "Outcome type",
    "model": "Model",
    "feature": "Feature",
    "tier": "Tier",
}
# The headline: the figure, its name, how it reads, and whether more is better.
HEADLINE = (
    ("revenue", "Revenue", "money", True),
    ("known_cost", "Inference cost", "money", False),
    ("margin", "Gross margin", "money", True),
    ("margin_percent", "Margin %", "percent", True),
    ("cost_per_success", "Cost per successful outcome", "unit_cost", False),
    ("succeeded", "Outcomes billed", "count", True),
    ("unpriced_calls", "Unpriced calls", "count", False),
)


def _shown(fmt: OperatorFormat, kind: str, value: Any, currency: str) -> str:
    if kind == "money":
        return fmt.money(value, currency)
    if kind == "unit_cost":
        return fmt.unit_cost(value, currency)
    if kind == "percent":
        return fmt.percent(value)
    return fmt.count(value)


def _exact(value: Any) -> str:
    if value is None:
        return ""
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


def drill_down(group_by: str, key: str, query: dict[str, str]) -> str:
    """Where a customer, outcome type, model, feature or tier leads: a customer's own page,
    or the dashboard for the same window narrowed to it (and to what `query` narrowed to
    already)."""
    if group_by == "customer":
        return reverse("admin-customer-economics", args=[key])
    kept = {name: query[name] for name in ("from", "to", *FILTERS) if query.get(name)}
    return f"{reverse('admin-dashboard')}?{urlencode({**kept, group_by: key})}"


def _headline(fmt: OperatorFormat, headline: Headline) -> list[dict[str, Any]]:
    figures = []
    for attribute, label, kind, more_is_better in HEADLINE:
        now, before = getattr(headline.current, attribute), getattr(headline.previous, attribute)
        change = fmt.change(now, before)
        good = {"up": more_is_better, "down": not more_is_better}.get(change.direction)
        figures.append(
            {
                "name": attribute,
                "label": label,
                "value": _shown(fmt, kind, now, headline.currency),
                "exact": _exact(now),
                "previous": _shown(fmt, kind, before, headline.currency),
                "change": change.text,
                "direction": change.direction,
                "tone": "" if good is None else "good" if good else "bad",
            }
        )
    return figures


def _waterfall(fmt: OperatorFormat, steps: list[WaterfallStep], currency: str) -> dict[str, Any]:
    """The steps as the page lists them and as the chart draws them (floating bars)."""
    level = Decimal(0)
    bars = []
    for step in steps:
        amount = step.amount or Decimal(0)
        if step.kind in ("revenue", "margin"):
            low, high, level = Decimal(0), amount, amount
        else:
            low, high = level + amount, level
            level += amount
        bars.append({"label": step.label, "kind": step.kind,
                     "range": [_exact(min(low, high)), _exact(max(low, high))]})  # fmt: skip
    return {
        "steps": [
            {"label": step.label, "kind": step.kind, "amount": fmt.money(step.amount, currency)}
            for step in steps
        ],
        "bars": bars,
    }


def _table_page(
    rows: list[MarginRow], window: dict[str, Any], query: dict[str, str]
) -> dict[str, Any]:
    """The table's rows sorted as asked (unknown figures last either way), the page asked
    for, headings that sort by their column (the sorted one the other way), and links to
    the pages before and after."""
    sort, descending = window["sort"], window["order"] == "desc"

    def value(row: MarginRow) -> Any:
        return row.key if sort == "key" else getattr(row, sort)

    known = sorted((r for r in rows if value(r) is not None), key=value, reverse=descending)
    ordered = known + [r for r in rows if value(r) is None]
    pages = max(1, -(-len(ordered) // TABLE_PAGE))
    number = min(window["page"], pages)
    kept = {name: v for name, v in query.items() if name not in ("sort", "order", "page")}

    def link(**changes: Any) -> str:
        return "?" + urlencode({**kept, "sort": sort, "order": window["order"], **changes})

    headings = []
    for name, label in [
        ("key", KEY_HEADINGS[window["group_by"]]),
        *((column, heading) for column, heading, _ in TABLE_COLUMNS),
    ]:
        if name == sort:
            state, order = ("descending", "asc") if descending else ("ascending", "desc")
        else:
            state, order = "none", "asc" if name == "key" else "desc"
        headings.append(
            {"label": label, "number": name != "key", "sorted": state,
             "href": link(sort=name, order=order, page=1)}
        )  # fmt: skip
    first = (number - 1) * TABLE_PAGE
    return {
        "rows": ordered[first : first + TABLE_PAGE],
        "headings": headings,
        "pager": {
            "first": first + 1 if ordered else 0,
            "last": min(first + TABLE_PAGE, len(ordered)),
            "count": len(ordered),
            "previous": link(page=number - 1) if number > 1 else "",
            "next": link(page=number + 1) if number < pages else "",
        },
    }


@replica_reads()
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The headline figures against the previous window, the margin waterfall, margin by
    customer, cost by model and per success over time, premium seats against their fee,
    savings; and the margin table (CSV at dashboard/margins.csv), each customer, model,
    feature and outcome type leading to its own view. Staff with the analytics permission
    only: it shows every customer's revenue and margin."""
    if not request.user.has_perm(ANALYTICS_PERMISSION):
        raise PermissionDenied
    form = _window_form(request)
    context: dict[str, Any] = {**admin.site.each_context(request), "title": "Unit economics"}
    if not form.is_valid():
        return render(
            request, "admin/analytics/dashboard.html", context | {"form": form}, status=400
        )
    window = form.cleaned_data
    start, end, filters = window["start"], window["end"], window["filters"]
    now = timezone.now()
    fmt = OperatorFormat.configured()
    page = dashboard_page(
        start=start, end=end, now=now, filters=filters, group_by=window["group_by"]
    )
    table = page.table
    waterfall = _waterfall(fmt, page.waterfall, table.currency)
    query = {name: value for name, value in request.GET.items() if name != "group_by"}
    currency = table.currency
    charts = page.charts | {
        "waterfall": waterfall["bars"],
        "links": {
            "margin_by_customer": [
                drill_down("customer", key, query)
                for key in page.charts["margin_by_customer"]["labels"]
            ],
            "cost_by_model": {
                series["name"]: drill_down("model", series["name"], query)
                for series in page.charts["cost_by_model"]["series"]
            },
            "cost_per_success": {
                series["name"]: drill_down("outcome_type", series["name"], query)
                for series in page.charts["cost_per_success"]["series"]
            },
        },
    }
    table_page = _table_page(table.rows, window, dict(request.GET.items()))
    rows = [
        {
            "key": row.key,
            "link": drill_down(table.group_by, row.key, query) if row.key else "",
            "cells": [
                _shown(fmt, kind, getattr(row, name), currency) for name, _, kind in TABLE_COLUMNS
            ],
        }
        for row in table_page["rows"]
    ]
    narrowed = [(name, getattr(filters, name)) for name in FILTERS if getattr(filters, name)]
    return render(
        request,
        "admin/analytics/dashboard.html",
        context
        | {
            "form": form,
            "charts": charts,
            "table": table,
            "key_heading": KEY_HEADINGS[table.group_by],
            "headings": table_page["headings"],
            "rows": rows,
            "pager": table_page["pager"],
            "totals": [
                _shown(fmt, kind, getattr(table.totals, name), currency)
                for name, _, kind in TABLE_COLUMNS
            ],
            "headline": _headline(fmt, page.headline),
            "headline_previous": (page.headline.previous_start, page.headline.previous_end),
            "waterfall": waterfall["steps"],
            "narrowed": narrowed,
            "unnarrowed": f"{reverse('admin-dashboard')}?"
            + urlencode({k: v for k, v in query.items() if k in ("from", "to")}),
            "query": request.GET.urlencode(),
        },
    )


@replica_reads()
def dashboard_margins_csv(request: HttpRequest) -> HttpResponse:
    """The dashboard's margin table as CSV, for the same window and grouping (the same
    permission)."""
    if not request.user.has_perm(ANALYTICS_PERMISSION):
        raise PermissionDenied
    form = _window_form(request)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
    window = form.cleaned_data
    report = margins_report(
        start=window["start"],
        end=window["end"],
        group_by=window["group_by"],
        filters=window["filters"],
        now=timezone.now(),
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"margins-{window['group_by']}-{window['start']:%Y%m%d}-{window['end']:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = SafeCsvWriter(response)
    writer.writerow([*MARGIN_COLUMNS, "currency"])
    for row in [*report.rows, report.totals]:
        cells = _margin_cells(row)
        if row is report.totals:
            cells[0] = "total"
        writer.writerow(["" if cell is None else cell for cell in cells] + [report.currency])
    return response


@replica_reads()
def customer_view(request: HttpRequest, external_id: str) -> HttpResponse:
    """One customer's story on one page: plan, subscription, the running period's preview
    and margin so far, invoices with their Stripe status, links and statements, margin by
    outcome type, model and feature over its last periods, cost per success period by
    period, alerts and credits."""
    if not request.user.has_perm(ANALYTICS_PERMISSION):
        raise PermissionDenied
    customer = get_object_or_404(Customer, external_id=external_id)
    now = timezone.now()
    fmt = OperatorFormat.configured()
    found = customer_economics(customer=customer, now=now)
    currency = settings.REPORTING_CURRENCY
    preview = found.preview
    period = preview.period if preview is not None else None
    margin = preview.margin if preview is not None else None
    context = {
        **admin.site.each_context(request),
        "title": f"{customer.external_id}: unit economics",
        "customer": customer,
        "customer_admin": reverse("admin:metering_customer_change", args=[customer.pk]),
        "subscription": found.subscription,
        "version": found.version,
        "preview": None
        if period is None or preview is None
        else {
            "start": preview.start,
            "end": preview.end,
            "lines": [
                (line.description, fmt.money(from_minor_units(line.amount, period.invoice.currency),
                                             period.invoice.currency))
                for line in period.invoice.lines
            ],
            "total": fmt.money(from_minor_units(period.invoice.total, period.invoice.currency),
                               period.invoice.currency),
            "margin": None if margin is None else fmt.money(margin.margin, margin.currency),
            "margin_percent": None if margin is None else fmt.percent(margin.margin_percent),
            "cost": None if margin is None else fmt.money(margin.known_cost, "USD"),
        },
        "invoices": [
            {
                "invoice": invoice,
                "admin": reverse("admin:invoicing_invoice_change", args=[invoice.pk]),
                "total": fmt.money(from_minor_units(invoice.total, invoice.currency),
                                   invoice.currency),
                "statement": import_string(settings.STATEMENT_PATH)(invoice.pk),
            }
            for invoice in found.invoices
        ],
        "periods": [
            {
                "start": period.start,
                "end": period.end,
                "closed": period.closed,
                "revenue": fmt.money(period.figures.revenue, currency),
                "cost": fmt.money(period.figures.known_cost, currency),
                "margin_percent": fmt.percent(period.figures.margin_percent),
                "cost_per_success": fmt.unit_cost(period.figures.cost_per_success, currency),
                "succeeded": fmt.count(period.figures.succeeded),
            }
            for period in found.periods
        ],
        "breakdowns": [
            {
                "title": KEY_HEADINGS[group_by],
                "id": f"by-{group_by}",
                "rows": [
                    {
                        "key": row.key or "—",
                        "link": drill_down(group_by, row.key, {"customer": customer.external_id})
                        if row.key
                        else "",
                        "revenue": fmt.money(row.revenue, currency),
                        "cost": fmt.money(row.known_cost, currency),
                        "margin": fmt.money(row.margin, currency),
                        "margin_percent": fmt.percent(row.margin_percent),
                    }
                    for row in report.rows
                ],
            }
            for group_by, report in found.by.items()
        ],
        "alerts": found.alerts,
        "credits": [
            (balance.currency, fmt.money(balance.available, balance.currency))
            for balance in found.credits
        ],
        "currency": currency,
    }  # fmt: skip
    return render(request, "admin/analytics/customer.html", context)


def admin_home(request: HttpRequest) -> HttpResponse:
    """The admin's home: the dashboard for staff who may read it (the screen they open
    every morning), the admin's own index for the rest, and with `?all` for everyone."""
    if request.user.has_perm(ANALYTICS_PERMISSION) and "all" not in request.GET:
        return HttpResponseRedirect(reverse("admin-dashboard"))
    return admin.site.index(request)
