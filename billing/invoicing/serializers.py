"""DRF serializers of invoicing: invoices, the usage with its invoice preview and margin."""

from datetime import datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from api.queries import UsageQuerySerializer, calendar_month
from billing.invoicing.models import (
    CreditMethod,
    CreditReason,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    PushState,
)
from billing.plans.selectors import customer_period
from metering.models import Customer
from metering.serializers import (
    StrictInputSerializer,
    UsageOutputSerializer,
)


class InvoiceLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(LineKind.choices)
    description = serializers.CharField()
    quantity = serializers.CharField(help_text="Exact decimal.")
    unit_price = serializers.CharField(help_text="Exact decimal, in the invoice currency.")
    amount = serializers.IntegerField(help_text="Minor units of the invoice currency (cents).")


class StoredInvoiceLineSerializer(InvoiceLineSerializer):
    period_start = serializers.SerializerMethodField(
        help_text="The service period the line bills: the invoice's own, or for late usage "
        "and credits the earlier period they belong to. Inclusive."
    )
    period_end = serializers.SerializerMethodField(help_text="Exclusive.")

    def get_period_start(self, line: InvoiceLine) -> datetime:
        return (line.source_invoice or line.invoice).period_start

    def get_period_end(self, line: InvoiceLine) -> datetime:
        return (line.source_invoice or line.invoice).period_end


class CustomerUsageQuerySerializer(UsageQuerySerializer):
    """The usage window: `from`/`to`; or `period`, the billing period holding that moment;
    by default the customer's current billing period (the calendar month, UTC, for a
    customer without a plan)."""

    period = serializers.DateTimeField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        explicit = "from" in data or "to" in data
        if explicit and "period" in data:
            raise serializers.ValidationError(
                {"period": "Give `period` or `from`/`to`, not both."}, code="invalid"
            )
        fields = super().to_internal_value(data) if explicit else {}
        if "period" in data:
            try:
                fields["period"] = serializers.DateTimeField().run_validation(data["period"])
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"period": exc.detail}) from exc
        return fields | {"explicit": explicit}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return super().validate(attrs) if attrs["explicit"] else attrs

    def window(self, *, customer: Customer, now: datetime) -> tuple[datetime, datetime]:
        data = self.validated_data
        if data["explicit"]:
            return data["from_"], data["to"]
        moment = data.get("period", now)
        return customer_period(customer=customer, moment=moment) or calendar_month(moment)


PERIOD_PARAMETER = OpenApiParameter(
    "period",
    datetime,
    description="ISO 8601: the billing period that holds this moment (instead of from/to).",
)


class PreviewLineSerializer(InvoiceLineSerializer):
    period_start = serializers.DateTimeField(
        help_text="The service period the line bills: the preview's, or for late usage and "
        "credits the earlier period they belong to. Inclusive."
    )
    period_end = serializers.DateTimeField(help_text="Exclusive.")


class InvoicePreviewSerializer(serializers.Serializer):
    plan = serializers.CharField()
    plan_version = serializers.IntegerField()
    period_start = serializers.DateTimeField(help_text="The billing period previewed.")
    period_end = serializers.DateTimeField(help_text="Exclusive.")
    currency = serializers.CharField()
    lines = PreviewLineSerializer(many=True)
    total = serializers.IntegerField(help_text="Minor units: the sum of the lines' amounts.")
    total_decimal = serializers.CharField(help_text="The total as a decimal string.")
    missing_fx_rates = serializers.ListField(
        child=serializers.CharField(),
        help_text="FX rates (currency and day) that outcome values need and nobody entered: "
        "their fees are not in the preview, and the close waits for them.",
    )


class MarginSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="Of the revenue.")
    revenue = serializers.CharField()
    inference_cost = serializers.CharField(
        allow_null=True,
        help_text="USD: the calls the invoice covers (the period's, and those that came late "
        "for earlier periods); null when every one is unpriced.",
    )
    cost_status = serializers.ChoiceField(
        ["complete", "incomplete", "unknown"],
        help_text="incomplete: some calls are unpriced, the cost is a lower bound.",
    )
    comparable = serializers.BooleanField(
        help_text="False when revenue is not in USD: no margin until FX rates exist."
    )
    margin = serializers.CharField(allow_null=True)
    margin_percent = serializers.CharField(allow_null=True)
    unpriced_calls = serializers.IntegerField(help_text="Calls whose cost is not known yet.")


class OutcomeTypeSummarySerializer(serializers.Serializer):
    type = serializers.CharField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()
    reversed = serializers.IntegerField()
    calls = serializers.IntegerField()
    cost = serializers.CharField(help_text="USD: all attributed calls, failures included.")
    cost_per_success = serializers.CharField(
        allow_null=True, help_text="cost / succeeded: what a success really costs."
    )
    unpriced_calls = serializers.IntegerField()


class UsageWithPreviewSerializer(UsageOutputSerializer):
    outcomes = OutcomeTypeSummarySerializer(many=True)
    premium_active_seats = serializers.IntegerField()
    invoice_preview = InvoicePreviewSerializer(
        allow_null=True,
        help_text="What the close of the billing period that holds `start` would bill now, "
        "late usage and credits of earlier periods included; null without a plan, or once "
        "that period is invoiced (`invoice_id`).",
    )
    invoice_id = serializers.IntegerField(
        allow_null=True, help_text="The invoice of that period, once it is closed."
    )
    margin = MarginSerializer(
        allow_null=True,
        help_text="Of the previewed invoice: its revenue against the cost of the calls it "
        "covers (the period's, and those that arrived late for earlier periods).",
    )


class CreditNoteLineSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    invoice_line = serializers.IntegerField(
        source="invoice_line.position",
        allow_null=True,
        help_text="The position of the invoice line it credits; null: a line of its own.",
    )
    description = serializers.CharField()
    amount = serializers.IntegerField(help_text="Minor units, above 0: what it gives back.")
    outcome = serializers.CharField(
        source="outcome.external_id", allow_null=True, help_text="A disputed outcome it credits."
    )


class CreditNoteSerializer(serializers.Serializer):
    id = serializers.CharField(source="external_id", help_text="Your id for it.")
    invoice_id = serializers.IntegerField()
    number = serializers.IntegerField(help_text="1, 2, … on its invoice.")
    method = serializers.ChoiceField(CreditMethod.choices)
    reason = serializers.CharField(help_text="Stripe's reason; empty when none was given.")
    memo = serializers.CharField()
    currency = serializers.CharField()
    total = serializers.IntegerField(help_text="Minor units: the sum of its lines.")
    created_at = serializers.DateTimeField()
    push_state = serializers.ChoiceField(
        PushState.choices, help_text="Its mirror in Stripe; not_sent: the invoice is not there."
    )
    stripe_credit_note_id = serializers.CharField(help_text="Empty until pushed.")
    pdf = serializers.CharField(help_text="Stripe's PDF of it; empty until pushed.")
    lines = CreditNoteLineSerializer(many=True)


class CreditLineInputSerializer(StrictInputSerializer):
    amount = serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        help_text="Above 0, in whole minor units of the invoice's currency.",
    )
    invoice_line = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The position of the invoice line it credits (no more than that line "
        "billed, less what earlier credit notes gave back). Left out: a line of its own, "
        "which needs a description.",
    )
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)


class CreditNoteInputSerializer(StrictInputSerializer):
    id = serializers.CharField(
        max_length=200,
        help_text="Your id for the credit note: sending it again is the same note (a safe "
        "retry); other terms under it are refused (409).",
    )
    method = serializers.ChoiceField(
        CreditMethod.choices,
        required=False,
        help_text="An unpaid (finalized) invoice: amount_due, the default. A paid one: "
        "refund, customer_balance or outside_stripe (required).",
    )
    reason = serializers.ChoiceField(CreditReason.choices, required=False)
    memo = serializers.CharField(max_length=500, required=False, allow_blank=True)
    lines = CreditLineInputSerializer(many=True, allow_empty=False)


class InvoiceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer = serializers.CharField(source="customer.external_id")
    period_start = serializers.DateTimeField(help_text="Inclusive.")
    period_end = serializers.DateTimeField(help_text="Exclusive.")
    status = serializers.ChoiceField(
        InvoiceStatus.choices,
        help_text="draft -> finalized -> paid | void | uncollectible; finalized as soon as "
        "Stripe finalizes it, then moved by Stripe's webhooks.",
    )
    currency = serializers.CharField()
    total = serializers.IntegerField(help_text="Minor units: the sum of the lines' amounts.")
    plan = serializers.CharField(source="plan_version.plan.code")
    plan_version = serializers.IntegerField(source="plan_version.version")
    stripe_invoice_id = serializers.CharField(help_text="Empty until pushed to Stripe.")
    hosted_invoice_url = serializers.CharField(
        help_text="Stripe's page where the customer reads and pays it; empty until finalized."
    )
    invoice_pdf = serializers.CharField(help_text="Stripe's PDF of it; empty until finalized.")
    lines = StoredInvoiceLineSerializer(many=True)
    replaced_by = serializers.IntegerField(
        source="replaced_by_id",
        allow_null=True,
        help_text="A void invoice reissued: the invoice that bills its period instead.",
    )
    credit_notes = CreditNoteSerializer(many=True, help_text="What was given back on it.")
