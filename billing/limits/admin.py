"""Operators' view of spend limits (editable), reservations (read-only: they move only
through the API and the expiry job) and the plans' fair-use caps (read-only: a job makes
them from the premium break-even report)."""

from django.contrib import admin

from billing.limits.models import FairUseCap, Reservation, SpendLimit
from common.admin import FactsAdmin


@admin.register(SpendLimit)
class SpendLimitAdmin(admin.ModelAdmin):
    list_display = ("customer", "mode", "fair_use", "seat_cost_cap", "updated_at")
    list_filter = ("mode",)
    search_fields = ("customer__external_id",)
    autocomplete_fields = ("customer",)


@admin.register(Reservation)
class ReservationAdmin(FactsAdmin):
    list_display = (
        "public_id",
        "customer",
        "amount",
        "currency",
        "status",
        "outcome_type",
        "quantity",
        "expires_at",
        "settled_amount",
        "created_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("public_id", "external_id", "customer__external_id")
    list_select_related = ("customer",)


@admin.register(FairUseCap)
class FairUseCapAdmin(FactsAdmin):
    list_display = ("plan", "cap", "window_start", "window_end", "computed_at")
    list_select_related = ("plan",)
