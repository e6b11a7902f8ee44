"""Operators edit plans here (or load them with `manage.py load_plans`), and see which
plan each customer is on."""

from decimal import Decimal
from typing import Any

from auditlog.registry import auditlog
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from billing.forms import (
    DashboardWindowForm,
    OutcomePriceForm,
    PlanVersionForm,
    PriceTierFormSet,
    SubscriptionForm,
    TokenPassThroughFormSet,
    plan_document_of,
)
from billing.integrations.stripe import StripeRefused, StripeRetryable
from billing.models import (
    FxRate,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    OutcomePrice,
    Plan,
    PlanVersion,
    PriceModel,
    PriceTier,
    Reconciliation,
    Subscription,
    TierMode,
    TokenPassThrough,
)
from billing.money import from_minor_units
from billing.schemas import OutcomePriceDoc, PassThroughDoc, PlanDoc, TierDoc
from billing.selectors.dashboard import dashboard_data
from billing.selectors.margins import MarginFilters, MarginRow, margins_report
from billing.services import PriceBookError, plan_version_billed, plan_version_revise
from billing.services.invoicing import invoice_cancel
from billing.tasks import push_invoice
from config.admin import FactsAdmin
from config.errors import ApiError
from config.exports import SafeCsvWriter
from config.queue import enqueue
from config.replicas import replica_reads


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
            return HttpResponseRedirect(reverse("admin:billing_planversion_change", args=[obj.pk]))
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
                pass_throughs.append(PassThroughDoc(markup=data["markup"], feature=data["feature"]))
                continue
            tiers = [
                TierDoc(unit_price=tier.unit_price, up_to=tier.up_to)
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
                    included=data.get("included_quantity") or 0,
                    tier_mode=None if data["tier_mode"] == TierMode.NONE else data["tier_mode"],
                    tiers=tiers or None,
                    package_size=data.get("package_size"),
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


class DriftFilter(admin.SimpleListFilter):
    title = "drift from Stripe"
    parameter_name = "drift"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "differs from Stripe")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        return queryset.exclude(drift="") if self.value() == "yes" else queryset


@admin.register(Invoice)
class InvoiceAdmin(FactsAdmin):
    """Invoices are made by closing periods, never by hand, and are never edited; the
    actions move their status (void, uncollectible) through the state machine."""

    list_display = (
        "customer",
        "period_start",
        "period_end",
        "currency",
        "total_display",
        "status",
        "push_state",
        "stripe_link",
        "customer_links",
        "drift",
    )
    list_filter = ("status", "push_state", DriftFilter, "currency")
    search_fields = ("customer__external_id",)
    date_hierarchy = "period_start"
    list_select_related = ("customer",)
    inlines = [InvoiceLineInline]
    actions = ["retry_push", "void", "mark_uncollectible"]

    @admin.display(description="Stripe")
    def stripe_link(self, invoice: Invoice) -> str:
        if not invoice.stripe_invoice_id:
            return "-"
        return format_html(
            '<a href="https://dashboard.stripe.com/invoices/{}">{}</a>',
            invoice.stripe_invoice_id,
            invoice.stripe_invoice_id,
        )

    @admin.display(description="customer's copy")
    def customer_links(self, invoice: Invoice) -> str:
        """Stripe's hosted page and PDF, what the customer receives."""
        if not invoice.hosted_invoice_url:
            return "-"
        return format_html(
            '<a href="{}">hosted page</a> · <a href="{}">PDF</a>',
            invoice.hosted_invoice_url,
            invoice.invoice_pdf or invoice.hosted_invoice_url,
        )

    # Each action its own permission, with change_invoice: a view-only user can do none.
    # (has_change_permission stays False: invoices are never edited by hand.)
    def _may(self, request: HttpRequest, permission: str) -> bool:
        user = request.user
        return user.has_perm("billing.change_invoice") and user.has_perm(f"billing.{permission}")

    def has_push_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "push_invoice")

    def has_void_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "void_invoice")

    def has_mark_uncollectible_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "mark_uncollectible_invoice")

    @admin.action(description="Push the selected invoices to Stripe again", permissions=["push"])
    def retry_push(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset.exclude(push_state__in=["pushed", "not_sent"]):
            if enqueue(push_invoice, invoice.pk):
                self.message_user(request, f"Invoice {invoice.pk}: push queued.")
            else:
                self.message_user(
                    request,
                    f"Invoice {invoice.pk}: the broker is unreachable; try again later.",
                    messages.ERROR,
                )

    @admin.display(description="total")
    def total_display(self, invoice: Invoice) -> str:
        return f"{from_minor_units(invoice.total, invoice.currency):f} {invoice.currency}"

    def _move(self, request: HttpRequest, queryset: QuerySet[Invoice], status: str) -> None:
        for invoice in queryset:
            try:
                invoice_cancel(invoice_id=invoice.pk, status=status)
            except ApiError as refused:
                self.message_user(request, refused.errors[0].message, messages.ERROR)
            except (StripeRefused, StripeRetryable) as failure:
                self.message_user(request, f"Invoice {invoice.pk}: {failure}", messages.ERROR)
            else:
                self.message_user(request, f"Invoice {invoice.pk} is {status}.")

    @admin.action(description="Void the selected invoices", permissions=["void"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._move(request, queryset, InvoiceStatus.VOID)

    @admin.action(
        description="Mark the selected invoices uncollectible",
        permissions=["mark_uncollectible"],
    )
    def mark_uncollectible(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._move(request, queryset, InvoiceStatus.UNCOLLECTIBLE)


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


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    list_display = ("currency", "effective_from", "usd_per_unit")
    list_filter = ("currency",)


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


ANALYTICS_PERMISSION = "billing.view_analytics"


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
        return render(request, "admin/billing/dashboard.html", context | {"form": form}, status=400)
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
        "admin/billing/dashboard.html",
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


# --- the audit log: who changed prices and invoices, and when -------------------------------
# Admin edits and actions record their user (auditlog's middleware); tasks (Stripe webhooks,
# closes) record none. Invoices: their status and total only, not the push bookkeeping.
auditlog.register(Plan)
auditlog.register(PlanVersion)
auditlog.register(OutcomePrice)
auditlog.register(PriceTier)
auditlog.register(TokenPassThrough)
auditlog.register(Subscription)
auditlog.register(FxRate)
auditlog.register(Invoice, include_fields=["status", "total"])
