"""Disputes in the admin: they arrive through the API; an operator decides each open one
here, with a note: reject it, or accept it with its remedy (the outcome reversed and
credited on the next invoice, or a credit note now on the invoice that billed it). Every
decision is in the audit log (who, when, what)."""

from typing import Any

from auditlog.registry import auditlog
from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from api.errors import ApiError
from billing.invoicing.models import CreditMethod
from billing.statements.services import dispute_credit
from outcomes.models import Dispute, DisputeStatus
from outcomes.services import dispute_decide

_DECISIONS = [
    ("", "—"),
    ("next_invoice", "Accept: reverse the outcome, credited on the next invoice"),
    ("credit_note", "Accept: a credit note now, on the invoice that billed it"),
    ("reject", "Reject: it stands"),
]


class DisputeForm(forms.ModelForm):
    """An open dispute's decision, with a note (both required); for a credit note on a
    paid invoice, where its money goes."""

    decision = forms.ChoiceField(choices=_DECISIONS, required=False)
    credit_method = forms.ChoiceField(
        choices=[("", "— (an unpaid invoice: lower what is due)")]
        + [(v, label) for v, label in CreditMethod.choices if v != CreditMethod.AMOUNT_DUE],
        required=False,
        help_text="A credit note on a paid invoice: refund, customer balance or outside Stripe.",
    )

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
        if data["decision"] == "credit_note":
            # The credit note's own rules decide: issued and rolled back, so that a
            # refusal shows here, with the form, instead of failing the save.
            try:
                with transaction.atomic():
                    _credit(self.instance, data, by="", dry_run=True)
            except _DryRun:
                pass
            except ApiError as refused:
                raise forms.ValidationError(refused.errors[0].message) from None
        return data


class _DryRun(Exception):
    pass


def _credit(dispute: Dispute, data: dict[str, Any], *, by: str, dry_run: bool = False) -> Any:
    credit = dispute_credit(
        dispute_id=dispute.pk,
        note=data["note"],
        by=by,
        now=timezone.now(),
        method=data.get("credit_method", ""),
    )
    if dry_run:
        raise _DryRun
    return credit


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    form = DisputeForm
    list_display = ("outcome", "customer", "outcome_type", "status", "remedy", "created_at",
                    "decided_by", "decided_at")  # fmt: skip
    list_filter = ("status", "remedy", "outcome__type")
    search_fields = ("=outcome__external_id", "outcome__customer__external_id")
    list_select_related = ("outcome__customer",)
    readonly_fields = ("outcome", "reason", "status", "remedy", "decided_by", "decided_at",
                       "created_at")  # fmt: skip

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
            return [*fields, "decision", "credit_method", "note"]
        return [*fields, "remedy", "note", "decided_by", "decided_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and obj.status != DisputeStatus.OPEN:
            return (*self.readonly_fields, "note")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Dispute, form: Any, change: bool) -> None:
        decision, note = form.cleaned_data["decision"], form.cleaned_data["note"]
        if decision == "credit_note":
            credit = _credit(obj, form.cleaned_data, by=str(request.user))
            self.message_user(
                request,
                f"Dispute of {obj.outcome.external_id}: accepted, credit note {credit.number} "
                f"on invoice {credit.invoice_id}.",
            )
        else:
            decided = dispute_decide(
                dispute_id=obj.pk,
                accept=decision != "reject",
                note=note,
                by=str(request.user),
                now=timezone.now(),
            )
            self.message_user(
                request, f"Dispute of {decided.outcome.external_id}: {decided.status}."
            )
        obj.refresh_from_db()


auditlog.register(Dispute)
