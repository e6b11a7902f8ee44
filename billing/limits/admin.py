"""Operators' view of spend limits (editable) and reservations (read-only: they move only
through the API and the expiry job)."""

from django.contrib import admin

from billing.limits.models import Reservation, SpendLimit
from common.admin import FactsAdmin


@admin.register(SpendLimit)
class SpendLimitAdmin(admin.ModelAdmin):
    list_display = ("customer", "mode", "updated_at")
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
