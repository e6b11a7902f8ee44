"""Operators edit plans here (or load them with `manage.py load_plans`), and see which
plan each customer is on. A billed version is never edited: saving it makes the next."""

from typing import Any

from auditlog.registry import auditlog
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from billing.plans.forms import (
    OutcomePriceForm,
    PlanVersionForm,
    PriceTierFormSet,
    SubscriptionForm,
    TokenPassThroughFormSet,
    dimension_prices_doc,
    pass_through_doc,
    plan_document_of,
)
from billing.plans.models import (
    OutcomePrice,
    Plan,
    PlanVersion,
    PriceModel,
    PriceTier,
    Subscription,
    TierMode,
    TokenPassThrough,
)
from billing.plans.schemas import OutcomePriceDoc, PlanDoc
from billing.plans.selectors import tier_doc
from billing.plans.services import PriceBookError, plan_version_billed, plan_version_revise


class PlanVersionInline(admin.TabularInline):
    """A plan's versions, to read: each is edited on its own page (billed ones as a new
    version)."""

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
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "created_at")
    search_fields = ("code", "name")
    inlines = [PlanVersionInline]


def _billed(version: PlanVersion | None) -> bool:
    return version is not None and plan_version_billed(version_id=version.pk)


class BilledVersionReadOnly:
    """Inlines and pages of a version's prices: read-only once an invoice used it."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _billed(_version_of(obj)) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _billed(_version_of(obj)) and super().has_delete_permission(request, obj)  # type: ignore[misc]


def _version_of(obj: Any) -> PlanVersion | None:
    if isinstance(obj, PlanVersion):
        return obj
    if isinstance(obj, OutcomePrice):
        return obj.plan_version
    return None


class OutcomePriceInline(admin.StackedInline):
    model = OutcomePrice
    form = OutcomePriceForm
    extra = 0
    show_change_link = True


class TokenPassThroughInline(admin.TabularInline):
    model = TokenPassThrough
    formset = TokenPassThroughFormSet
    extra = 0


@admin.register(PlanVersion)
class PlanVersionAdmin(admin.ModelAdmin):
    """A version no invoice used yet is edited in place. A billed one never is: saving it
    makes a new version of the plan with the changes (as `load_plans` would), checked as
    a loaded price book, and customers are billed on it from their next close."""

    form = PlanVersionForm
    list_display = (
        "plan",
        "version",
        "currency",
        "base_fee",
        "premium_seat_fee",
        "billed",
        "created_at",
    )
    list_filter = ("plan", "currency")
    inlines = [OutcomePriceInline, TokenPassThroughInline]

    @admin.display(boolean=True, description="billed")
    def billed(self, version: PlanVersion) -> bool:
        return _billed(version)

    def save_model(self, request: HttpRequest, obj: PlanVersion, form: Any, change: bool) -> None:
        if change and _billed(obj):
            return  # save_related makes the new version instead
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        version = form.instance
        if not (change and _billed(version)):
            super().save_related(request, form, formsets, change)
            return
        try:
            loaded = plan_version_revise(
                plan=version.plan, document=_edited_document(version, formsets)
            )
        except PriceBookError as refused:
            self.message_user(request, f"Nothing saved: {refused}", messages.ERROR)
            return
        for formset in formsets:  # saved nothing: the log entry lists no inline change
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        new = PlanVersion.objects.get(plan=version.plan, version=loaded.version)
        if loaded.changed:
            self.message_user(
                request,
                f"{version} has been billed, so it is kept as it is: your changes are "
                f"version {new.version}, billed from each customer's next close.",
                messages.WARNING,
            )
        # The pages that follow (the log entry, the redirect) are the new version's.
        version.pk, version.version = new.pk, new.version

    def response_change(self, request: HttpRequest, obj: PlanVersion) -> HttpResponse:
        edited = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
        if "_continue" in request.POST and edited != str(obj.pk):  # a new version was made
            return HttpResponseRedirect(reverse("admin:plans_planversion_change", args=[obj.pk]))
        return super().response_change(request, obj)


def _edited_document(version: PlanVersion, formsets: Any) -> PlanDoc:
    """The plan as the admin's form and inlines now say it: the version's fields, its
    outcome prices (with their tiers, edited on the prices' own pages) and pass-through."""
    outcomes, pass_throughs = [], []
    for formset in formsets:
        for form in formset.forms:
            data = form.cleaned_data
            if not data or data.get("DELETE"):
                continue
            if isinstance(form.instance, TokenPassThrough):
                pass_throughs.append(pass_through_doc(data))
                continue
            tiers = [
                tier_doc(tier)
                for tier in PriceTier.objects.filter(outcome_price_id=form.instance.pk)
            ]
            percentage = data["percentage"] if data["model"] == PriceModel.PERCENTAGE else None
            outcomes.append(
                OutcomePriceDoc(
                    type=data["outcome_type"],
                    unit_price=data.get("unit_price"),
                    percentage=percentage,
                    floor=data.get("floor"),
                    cap=data.get("cap"),
                    fixed_fee=data.get("fixed_fee"),
                    free_value=data.get("free_value"),
                    included=data.get("included_quantity") or 0,
                    tier_mode=None if data["tier_mode"] == TierMode.NONE else data["tier_mode"],
                    tiers=tiers or None,
                    package_size=data.get("package_size"),
                    dimension=data.get("dimension") or None,
                    prices=dimension_prices_doc(data.get("dimension_prices")),
                )
            )
    return plan_document_of(version, outcomes=outcomes, token_pass_through=pass_throughs)


class PriceTierInline(BilledVersionReadOnly, admin.TabularInline):
    model = PriceTier
    formset = PriceTierFormSet
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _billed(_version_of(obj)) and super().has_add_permission(request, obj)


@admin.register(OutcomePrice)
class OutcomePriceAdmin(BilledVersionReadOnly, admin.ModelAdmin):
    """An outcome price with its tiers; read-only once its version was billed (edit the
    version to make a new one)."""

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
    form = SubscriptionForm
    list_display = ("customer", "plan", "premium_seats", "updated_at")
    list_filter = ("plan",)
    search_fields = ("customer__external_id",)
    list_select_related = ("customer", "plan")
    autocomplete_fields = ("customer",)


# The audit log: who changed prices, and when. Admin edits record their user (auditlog's
# middleware).
auditlog.register(Plan)
auditlog.register(PlanVersion)
auditlog.register(OutcomePrice)
auditlog.register(PriceTier)
auditlog.register(TokenPassThrough)
auditlog.register(Subscription)
