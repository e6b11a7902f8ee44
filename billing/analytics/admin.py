"""The margins of closed periods, and the unit-economics dashboard (staff with the
analytics permission only: it is wrapped in admin_view in config/urls.py)."""

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing.analytics.forms import DashboardWindowForm
from billing.analytics.models import Reconciliation
from billing.analytics.selectors.dashboard import dashboard_data
from billing.analytics.selectors.margins import MarginFilters, MarginRow, margins_report
from common.admin import FactsAdmin
from common.exports import SafeCsvWriter
from common.replicas import replica_reads


class NegativeMarginFilter(admin.SimpleListFilter):
    title = "margin"
    parameter_name = "margin"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("negative", "negative"),
            ("positive", "zero or positive"),
            ("not_comparable", "none (not USD, or every call unpriced)"),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Reconciliation]
    ) -> QuerySet[Reconciliation]:
        if self.value() == "negative":
            return queryset.filter(margin__lt=0)
        if self.value() == "positive":
            return queryset.filter(margin__gte=0)
        if self.value() == "not_comparable":
            return queryset.filter(margin__isnull=True)
        return queryset


@admin.register(Reconciliation)
class ReconciliationAdmin(FactsAdmin):
    list_display = (
        "invoice",
        "revenue",
        "inference_cost",
        "margin",
        "margin_percent",
        "calls",
        "unpriced_calls",
    )
    list_filter = (NegativeMarginFilter,)
    search_fields = ("invoice__customer__external_id",)
    list_select_related = ("invoice__customer",)


# --- the unit-economics dashboard (staff only: wrapped in admin_view in config/urls.py) ----

# The admin's home page links to the dashboard.
admin.site.index_template = "admin/payback_index.html"

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


@replica_reads()
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Margin by customer, cost by model and per success over time, premium seats against
    their fee, savings; and the margin table (CSV at dashboard/margins.csv). Staff with the
    analytics permission only: it shows every customer's revenue and margin."""
    if not request.user.has_perm(ANALYTICS_PERMISSION):
        raise PermissionDenied
    form = _window_form(request)
    context: dict[str, Any] = {**admin.site.each_context(request), "title": "Unit economics"}
    if not form.is_valid():
        return render(
            request, "admin/analytics/dashboard.html", context | {"form": form}, status=400
        )
    window = form.cleaned_data
    now = timezone.now()
    data = dashboard_data(start=window["start"], end=window["end"], now=now)
    # The charts' report is by customer: the table reuses it when grouped the same way.
    table = (
        data.margins
        if window["group_by"] == "customer"
        else margins_report(
            start=window["start"],
            end=window["end"],
            group_by=window["group_by"],
            filters=MarginFilters(),
            now=now,
        )
    )
    return render(
        request,
        "admin/analytics/dashboard.html",
        context
        | {
            "form": form,
            "charts": data.charts,
            "table": table,
            "columns": MARGIN_COLUMNS,
            "rows": [_margin_cells(row) for row in table.rows],
            "totals": _margin_cells(table.totals),
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
        filters=MarginFilters(),
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
