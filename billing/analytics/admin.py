"""The margins of closed periods in the admin (the dashboard and the customer pages are
billing/analytics/views.py)."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.analytics.models import Reconciliation
from common.admin import FactsAdmin


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


# The admin's home page links to the dashboard (billing/analytics/views.py).
admin.site.index_template = "admin/payback_index.html"
