"""Operators' view of credits: grants with their ledger, promotional grants made here,
and voids (audited: the audit log records who voided, as for invoices and plans)."""

from decimal import Decimal
from typing import Any

from auditlog.registry import auditlog
from django import forms
from django.contrib import admin
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from api.errors import ApiError
from billing.credits import services
from billing.credits.models import AutoTopUp, CreditEntry, CreditGrant, TopUp
from common.admin import FactsAdmin


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
