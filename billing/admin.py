"""Operators edit plans here (or load them with `manage.py load_plans`), and see which
plan each customer is on."""

from django.contrib import admin

from billing.forms import OutcomePriceForm, PriceTierFormSet
from billing.models import (
    OutcomePrice,
    Plan,
    PlanVersion,
    PriceTier,
    Subscription,
    TokenPassThrough,
)


class PlanVersionInline(admin.TabularInline):
    model = PlanVersion
    extra = 0
    fields = (
        "version",
        "currency",
        "base_fee",
        "minimum_spend",
        "premium_seat_fee",
        "seat_mode",
        "reversal_window_days",
    )
    show_change_link = True


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "created_at")
    search_fields = ("code", "name")
    inlines = [PlanVersionInline]


class OutcomePriceInline(admin.StackedInline):
    model = OutcomePrice
    form = OutcomePriceForm
    extra = 0
    show_change_link = True


class TokenPassThroughInline(admin.TabularInline):
    model = TokenPassThrough
    extra = 0


@admin.register(PlanVersion)
class PlanVersionAdmin(admin.ModelAdmin):
    list_display = ("plan", "version", "currency", "base_fee", "premium_seat_fee", "created_at")
    list_filter = ("plan", "currency")
    inlines = [OutcomePriceInline, TokenPassThroughInline]


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    formset = PriceTierFormSet
    extra = 0


@admin.register(OutcomePrice)
class OutcomePriceAdmin(admin.ModelAdmin):
    form = OutcomePriceForm
    list_display = (
        "plan_version",
        "outcome_type",
        "model",
        "unit_price",
        "percentage",
        "included_quantity",
        "tier_mode",
        "package_size",
    )
    list_filter = ("model", "tier_mode")
    inlines = [PriceTierInline]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("customer", "plan", "premium_seats", "updated_at")
    list_filter = ("plan",)
    search_fields = ("customer__external_id",)
    list_select_related = ("customer", "plan")
    autocomplete_fields = ("customer",)
