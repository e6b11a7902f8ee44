"""Invoices as the closes made them (never made or edited by hand), and the FX rates.
The Stripe side of an invoice (its links, drift, and the actions that also change it in
Stripe: void, mark uncollectible, push again) is added by billing/stripe_sync/admin.py."""

from typing import Any

from auditlog.registry import auditlog
from django.contrib import admin
from django.http import HttpRequest

from billing.invoicing.models import FxRate, Invoice, InvoiceLine
from billing.money import from_minor_units
from common.admin import FactsAdmin


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fk_name = "invoice"
    extra = 0
    fields = (
        "position",
        "kind",
        "description",
        "quantity",
        "unit_price",
        "amount",
        "source_invoice",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(FactsAdmin):
    """Invoices are made by closing periods, never by hand, and are never edited."""

    list_display = (
        "customer",
        "period_start",
        "period_end",
        "currency",
        "total_display",
        "status",
        "push_state",
    )
    list_filter: tuple[Any, ...] = ("status", "push_state", "currency")
    search_fields = ("customer__external_id",)
    date_hierarchy = "period_start"
    list_select_related = ("customer",)
    inlines = [InvoiceLineInline]

    @admin.display(description="total")
    def total_display(self, invoice: Invoice) -> str:
        return f"{from_minor_units(invoice.total, invoice.currency):f} {invoice.currency}"


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    list_display = ("currency", "effective_from", "usd_per_unit")
    list_filter = ("currency",)


# The audit log: who changed rates and invoices, and when. Admin actions record their user
# (auditlog's middleware); tasks (Stripe webhooks, closes) record none. Invoices: their
# status and total only, not the push bookkeeping.
auditlog.register(FxRate)
auditlog.register(Invoice, include_fields=["status", "total"])
