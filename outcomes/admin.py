"""Operators' view of outcomes: status filters, and each outcome's attributed calls and
cost (outcomes are facts recorded through the API: read-only here); and disputes, which
an operator accepts or rejects with a note."""

from typing import Any

from auditlog.registry import auditlog
from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from common.admin import FactsAdmin
from outcomes.models import Dispute, DisputeStatus, Outcome
from outcomes.selectors import outcome_cost
from outcomes.services import dispute_decide


@admin.register(Outcome)
class OutcomeAdmin(FactsAdmin):
    list_display = ("external_id", "customer", "type", "status", "occurred_at", "value",
                    "value_currency")  # fmt: skip
    list_filter = ("status", "type", "customer")
    search_fields = ("=external_id",)
    date_hierarchy = "occurred_at"
    list_select_related = ("customer",)
    readonly_fields = ("attributed_calls", "attributed_cost")

    @admin.display(description="attributed calls")
    def attributed_calls(self, outcome: Outcome) -> str:
        cost = outcome_cost(outcome=outcome)
        return f"{cost.calls} ({cost.unpriced_calls} unpriced)"

    @admin.display(description="attributed cost (USD)")
    def attributed_cost(self, outcome: Outcome) -> str:
        cost = outcome_cost(outcome=outcome).cost
        return "unpriced" if cost is None else f"{cost.normalize():f}"


class DisputeForm(forms.ModelForm):
    """An open dispute's decision: accept or reject, with a note (both required)."""

    decision = forms.ChoiceField(
        choices=[("", "—"), ("accept", "Accept: reverse the outcome, credited next invoice"),
                 ("reject", "Reject: it stands")],
        required=False,
    )  # fmt: skip

    class Meta:
        model = Dispute
        fields = ("note",)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.status != DisputeStatus.OPEN:
            raise forms.ValidationError("This dispute is decided already.")
        if not data.get("decision"):
            raise forms.ValidationError({"decision": "Accept or reject it."})
        if not (data.get("note") or "").strip():
            raise forms.ValidationError({"note": "Say why: the customer will ask."})
        return data


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    """Disputes arrive through the API; an operator decides each open one here, with a
    note. Every decision is in the audit log (who, when, what)."""

    form = DisputeForm
    list_display = ("outcome", "customer", "outcome_type", "status", "created_at",
                    "decided_by", "decided_at")  # fmt: skip
    list_filter = ("status", "outcome__type")
    search_fields = ("=outcome__external_id", "outcome__customer__external_id")
    list_select_related = ("outcome__customer",)
    readonly_fields = ("outcome", "reason", "status", "decided_by", "decided_at", "created_at")

    @admin.display(description="customer")
    def customer(self, dispute: Dispute) -> str:
        return dispute.outcome.customer.external_id

    @admin.display(description="type")
    def outcome_type(self, dispute: Dispute) -> str:
        return dispute.outcome.type

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers dispute through the product backend (the API)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["outcome", "reason", "status", "created_at"]
        if obj is not None and obj.status == DisputeStatus.OPEN:
            return [*fields, "decision", "note"]
        return [*fields, "note", "decided_by", "decided_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and obj.status != DisputeStatus.OPEN:
            return (*self.readonly_fields, "note")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Dispute, form: Any, change: bool) -> None:
        decided = dispute_decide(
            dispute_id=obj.pk,
            accept=form.cleaned_data["decision"] == "accept",
            note=form.cleaned_data["note"],
            by=str(request.user),
            now=timezone.now(),
        )
        obj.refresh_from_db()
        self.message_user(request, f"Dispute of {decided.outcome.external_id}: {decided.status}.")


auditlog.register(Dispute)
