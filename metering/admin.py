"""Operators' view of metering: customers, events (read-only), price overrides.
API keys are managed by djangorestframework-api-key's own admin (prefix shown, key shown
once on creation, revocable, optional expiry)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from common.admin import FactsAdmin
from metering.models import Customer, ModelPriceOverride, UsageEvent
from metering.selectors import events_by_client_id
from metering.services import price_override_save


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("external_id", "name", "email", "currency", "created_at", "economics")
    search_fields = ("external_id", "name", "email")
    readonly_fields = ("economics", "created_at", "updated_at")

    @admin.display(description="unit economics")
    def economics(self, customer: Customer) -> str:
        """The customer's page in the operator's cockpit (billing/analytics/views.py), by
        its URL's name: metering knows nothing of analytics."""
        if not customer.pk:
            return "-"
        url = reverse("admin-customer-economics", args=[customer.external_id])
        return format_html('<a href="{}">plan, invoices, margins, alerts</a>', url)


class UnpricedFilter(admin.SimpleListFilter):
    title = "priced"
    parameter_name = "unpriced"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "unpriced only"), ("no", "priced only")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[UsageEvent]
    ) -> QuerySet[UsageEvent]:
        if self.value() == "yes":
            return queryset.filter(cost__isnull=True)
        if self.value() == "no":
            return queryset.filter(cost__isnull=False)
        return queryset


@admin.register(UsageEvent)
class UsageEventAdmin(FactsAdmin):
    """Events are facts: nobody adds, edits or deletes them here."""

    list_display = (
        "event_id",
        "customer",
        "timestamp",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_display",
        "cost_source",
        "feature",
        "outcome_ref",
    )
    list_filter = (UnpricedFilter, "cost_source", "provider", "model", "feature", "customer")
    search_fields = ("=event_id",)
    search_help_text = "Exact event id."
    date_hierarchy = "timestamp"
    list_select_related = ("customer",)
    ordering = ("-timestamp",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[UsageEvent], search_term: str
    ) -> tuple[QuerySet[UsageEvent], bool]:
        if not search_term:
            return queryset, False
        found = events_by_client_id(event_id=search_term.strip())
        return queryset.filter(pk__in=found.values("pk")), False

    @admin.display(description="cost (USD)", ordering="cost")
    def cost_display(self, event: UsageEvent) -> str:
        return "unpriced" if event.cost is None else f"{event.cost.normalize():f}"


@admin.register(ModelPriceOverride)
class ModelPriceOverrideAdmin(admin.ModelAdmin):
    list_display = (
        "provider",
        "model",
        "effective_from",
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "note",
    )
    list_filter = ("provider",)
    search_fields = ("provider", "model")

    def save_model(
        self, request: HttpRequest, obj: ModelPriceOverride, form: Any, change: bool
    ) -> None:
        price_override_save(override=obj)
