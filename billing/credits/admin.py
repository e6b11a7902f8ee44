"""Operators' view of credits: grants with their ledger, promotional grants made here,
and voids (audited: the audit log records who voided, as for invoices and plans)."""

from decimal import Decimal
from typing import Any

from auditlog.registry import auditlog
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from api.errors import ApiError
from billing.credits import selectors, services
from billing.credits.models import AutoTopUp, CreditEntry, CreditGrant, TopUp
from common.admin import FactsAdmin
from metering.models import Customer


class CreditEntryInline(admin.TabularInline):
    model = CreditEntry
    fields = ("at", "kind", "amount", "invoice", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "pk")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GrantForm(forms.ModelForm):
    """Checked as the API checks a grant (services.grant_checked), errors on their fields."""

    _FIELDS = {"id": "external_id"}

    class Meta:
        model = CreditGrant
        fields = (
            "customer",
            "external_id",
            "currency",
            "amount",
            "priority",
            "effective_at",
            "expires_at",
            "description",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "external_id" in self.fields:
            self.fields["external_id"].required = False
            self.fields["external_id"].help_text = "Left empty: payback makes one up."
            self.fields["effective_at"].required = False
            self.fields["effective_at"].help_text = "Left empty: now."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is None and not self.errors:
            try:
                services.grant_checked(_grant_request(cleaned), timezone.now())
            except ApiError as refused:
                for error in refused.errors:
                    field = self._FIELDS.get(error.field or "", error.field)
                    self.add_error(field if field in self.fields else None, error.message)
        return cleaned


def _grant_request(fields: dict[str, Any]) -> services.GrantRequest:
    return services.GrantRequest(
        amount=fields["amount"],
        currency=fields["currency"].strip().upper(),
        external_id=fields.get("external_id") or "",
        priority=fields["priority"],
        effective_at=fields.get("effective_at"),
        expires_at=fields.get("expires_at"),
        description=fields.get("description") or "",
    )


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    """A grant is made once (promotional, with its ledger entry, by the same service the
    API uses) and then only voided: its terms and entries are never edited."""

    form = GrantForm
    list_display = (
        "customer",
        "external_id",
        "kind",
        "amount",
        "currency",
        "balance",
        "priority",
        "effective_at",
        "expires_at",
        "voided_at",
    )
    list_filter = ("kind", "currency", "voided_at")
    search_fields = ("customer__external_id", "external_id", "description")
    inlines = [CreditEntryInline]
    actions = ["void"]

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        return (*self.list_display, "ledger")

    @admin.display(description="customer's ledger")
    def ledger(self, grant: CreditGrant) -> str:
        url = reverse("admin:credits_customer_ledger", args=[grant.customer_id])
        return format_html('<a href="{}">balance over time</a>', url)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "customer/<int:customer_id>/ledger/",
                self.admin_site.admin_view(self.ledger_view),
                name="credits_customer_ledger",
            ),
            *super().get_urls(),
        ]

    def ledger_view(self, request: HttpRequest, customer_id: int) -> HttpResponse:
        """A customer's ledger per currency, with its balance over time as a chart."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        customer = get_object_or_404(Customer, pk=customer_id)
        charts = [
            _chart(currency, lines)
            for currency, lines in sorted(
                selectors.ledger_with_balances(customer_id=customer.pk).items()
            )
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Credits of {customer.external_id}",
            "customer": customer,
            "charts": charts,
        }
        return render(request, "admin/credits/ledger.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CreditGrant]:
        return (
            super()
            .get_queryset(request)
            .select_related("customer")
            .annotate(balance=Coalesce(Sum("entries__amount"), Decimal(0)))
        )

    @admin.display(description="balance", ordering="balance")
    def balance(self, grant: CreditGrant) -> Decimal:
        return grant.balance  # type: ignore[attr-defined]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return (*GrantForm.Meta.fields, "kind", "voided_at", "void_reason")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: CreditGrant, form: Any, change: bool) -> None:
        if change:
            return  # nothing of a grant is editable (get_readonly_fields)
        grant, _ = services.grant_create(
            customer=obj.customer, request=_grant_request(form.cleaned_data)
        )
        obj.pk = grant.pk

    @admin.action(description="Void the selected grants", permissions=["change"])
    def void(self, request: HttpRequest, queryset: QuerySet[CreditGrant]) -> None:
        for grant in queryset:
            services.grant_void(grant_id=grant.pk, reason=f"voided by {request.user}")
            self.message_user(request, f"Grant {grant.external_id}: voided.")


auditlog.register(CreditGrant)


@admin.register(TopUp)
class TopUpAdmin(FactsAdmin):
    """Top-ups move through Stripe (their push and webhooks), not by hand."""

    list_display = (
        "customer",
        "external_id",
        "amount",
        "currency",
        "auto",
        "status",
        "stripe_invoice_id",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "auto", "currency")
    search_fields = ("customer__external_id", "external_id", "stripe_invoice_id")
    list_select_related = ("customer",)


@admin.register(AutoTopUp)
class AutoTopUpAdmin(admin.ModelAdmin):
    list_display = ("customer", "threshold", "amount", "currency", "armed", "updated_at")
    search_fields = ("customer__external_id",)
    autocomplete_fields = ("customer",)
    readonly_fields = ("armed",)


CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 640, 160, 8


def _chart(currency: str, lines: list[selectors.LedgerLine]) -> dict[str, Any]:
    """A step line of the balance after each entry, scaled into the chart's box."""
    balances = [line.balance for line in lines]
    low, high = min([*balances, Decimal(0)]), max(balances)
    span = (high - low) or Decimal(1)
    step = (CHART_WIDTH - 2 * CHART_MARGIN) / max(len(lines) - 1, 1)
    inner = CHART_HEIGHT - 2 * CHART_MARGIN
    points = " ".join(
        f"{CHART_MARGIN + index * step:.1f},"
        f"{CHART_MARGIN + (high - balance) / span * inner:.1f}"  # Decimal: no float of money
        for index, balance in enumerate(balances)
    )
    return {
        "currency": currency,
        "lines": lines,
        "points": points,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "balance": balances[-1].normalize(),
        "low": low.normalize(),
        "high": high.normalize(),
        "first": f"{lines[0].entry.at:%Y-%m-%d}",
        "last": f"{lines[-1].entry.at:%Y-%m-%d}",
    }
