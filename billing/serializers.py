"""DRF serializers of the billing endpoints: customers with their plan, the usage with
its invoice preview and margin, plans."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from billing.api.common import UsageQuerySerializer, calendar_month
from billing.models import InvoiceLine, InvoiceStatus, LineKind, Plan
from billing.selectors import customer_period
from metering.models import Customer
from metering.serializers import (
    AwareDateTimeField,
    CustomerInputSerializer,
    CustomerOutputSerializer,
    UsageOutputSerializer,
)

# What the seats column holds (a PostgreSQL integer).
MAX_SEATS = 2**31 - 1


class CustomerWithPlanInputSerializer(CustomerInputSerializer):
    plan = serializers.SlugField(required=False, help_text="The code of the customer's plan.")
    premium_seats = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_SEATS,
        help_text="Fixed premium seats (plans with fixed seats).",
    )

    started_at = AwareDateTimeField(
        required=False,
        help_text="When the subscription starts (ISO 8601 with offset); default: now. Its "
        "first period runs from here to the next anchor day.",
    )
    billing_anchor_day = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=31,
        help_text="The day of the month periods start on (31: the last day of shorter months).",
    )
    timezone = serializers.CharField(
        required=False,
        max_length=64,
        help_text="IANA, e.g. `Europe/Berlin`: where periods start at midnight.",
    )

    def validate_plan(self, value: str) -> str:
        if not Plan.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"No plan `{value}`.", code="unknown_plan")
        return value

    def validate_timezone(self, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise serializers.ValidationError(
                f"`{value}` is not an IANA time zone.", code="invalid"
            ) from exc
        return value


class NextPlanSerializer(serializers.Serializer):
    plan = serializers.CharField()
    from_ = serializers.DateTimeField(help_text="The start of the next period.")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class CustomerWithPlanOutputSerializer(CustomerOutputSerializer):
    plan = serializers.CharField(allow_null=True, help_text="The plan in effect now.")
    premium_seats = serializers.IntegerField(help_text="Fixed premium seats now.")
    started_at = serializers.DateTimeField(allow_null=True)
    billing_anchor_day = serializers.IntegerField(allow_null=True)
    timezone = serializers.CharField(allow_null=True)
    next_plan = NextPlanSerializer(
        allow_null=True, help_text="A plan change, effective from the next period."
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


class TierDocSerializer(serializers.Serializer):
    unit_price = serializers.CharField()
    up_to = serializers.IntegerField(required=False, help_text="Absent: and above.")


class OutcomePriceDocSerializer(serializers.Serializer):
    """A price per succeeded outcome of one type; the fields a price does not use are
    left out."""

    type = serializers.CharField()
    unit_price = serializers.CharField(required=False)
    percentage = serializers.CharField(required=False)
    floor = serializers.CharField(required=False)
    cap = serializers.CharField(required=False)
    included = serializers.IntegerField(required=False)
    tier_mode = serializers.ChoiceField(["graduated", "volume"], required=False)
    tiers = TierDocSerializer(many=True, required=False)
    package_size = serializers.IntegerField(required=False)


class PassThroughDocSerializer(serializers.Serializer):
    markup = serializers.CharField()
    feature = serializers.CharField(required=False, help_text="Absent: every other feature.")


class PlanDocumentSerializer(serializers.Serializer):
    """A plan's version as a price-book document (see `manage.py load_plans`)."""

    code = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    currency = serializers.CharField()
    base_fee = serializers.CharField()
    minimum_spend = serializers.CharField(allow_null=True)
    premium_seat_fee = serializers.CharField(allow_null=True)
    seat_mode = serializers.ChoiceField(["fixed", "active"])
    reversal_window_days = serializers.IntegerField()
    collection_method = serializers.ChoiceField(["charge_automatically", "send_invoice"])
    days_until_due = serializers.IntegerField()
    outcomes = OutcomePriceDocSerializer(many=True)
    token_pass_through = PassThroughDocSerializer(many=True)
    included_features = serializers.ListField(child=serializers.CharField())
    premium_target_margin_percent = serializers.CharField()

    def to_representation(self, instance: Any) -> Any:
        return instance


class PlanVersionDocumentSerializer(PlanDocumentSerializer):
    created_at = serializers.DateTimeField()
    billed = serializers.BooleanField(
        help_text="An invoice was rated on it: it is kept as it is for good."
    )


class PlanSavedSerializer(PlanDocumentSerializer):
    changed = serializers.BooleanField(
        help_text="false: the document matched the current version; nothing was made."
    )


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


# --- the analytics answers: their shapes for the OpenAPI schema ------------------------------
# Money and ratios travel as decimal strings; null is "unknown" (a missing FX rate, calls
# without a price), never zero.


def _decimal(help_text: str = "", **options: Any) -> serializers.CharField:
    return serializers.CharField(
        allow_null=True, help_text=help_text or "Exact decimal.", **options
    )


class MissingRateSerializer(serializers.Serializer):
    currency = serializers.CharField()
    at = serializers.DateTimeField(help_text="The moment the rate is needed for.")


class OutcomeCountsSerializer(serializers.Serializer):
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    reversed = serializers.IntegerField()


class MarginRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="The group; null: none (or totals).")
    revenue = _decimal("Reporting currency; void and uncollectible invoices excluded.")
    written_off = _decimal("Billed on void and uncollectible invoices: not revenue.")
    inference_cost = _decimal("Reporting currency; null when every call is unpriced.")
    cost_status = serializers.ChoiceField(
        ["complete", "incomplete", "unknown"],
        help_text="incomplete: some calls are unpriced, the cost is a lower bound; unknown: "
        "every call is.",
    )
    margin = _decimal()
    margin_percent = _decimal()
    calls = serializers.IntegerField()
    tokens = serializers.IntegerField()
    unpriced_calls = serializers.IntegerField()
    outcomes = OutcomeCountsSerializer(
        allow_null=True, help_text="group_by customer and outcome_type only."
    )
    cost_per_success = _decimal()
    revenue_by_currency = serializers.DictField(child=serializers.CharField())
    missing_rates = MissingRateSerializer(many=True)
    included = serializers.BooleanField(
        required=False, help_text="group_by feature: a feature some plan gives away."
    )


class PeriodCountsSerializer(serializers.Serializer):
    closed = serializers.IntegerField()
    open = serializers.IntegerField()


class MarginReportSerializer(serializers.Serializer):
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    group_by = serializers.ChoiceField(["customer", "outcome_type", "model", "feature", "tier"])
    currency = serializers.CharField(help_text="The reporting currency.")
    periods = PeriodCountsSerializer()
    rows = MarginRowSerializer(many=True)
    rows_total = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    totals = MarginRowSerializer()
    missing_rates = MissingRateSerializer(many=True)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class CachingSerializer(serializers.Serializer):
    calls_with_prompt_hash = serializers.IntegerField()
    repeated_calls = serializers.IntegerField()
    repeated_share = _decimal()
    repeated_cost = _decimal("USD a prompt cache could save.")
    cache_hits = serializers.IntegerField()
    cache_hit_saving = _decimal()
    cache_read_tokens = serializers.IntegerField()
    cache_read_saving = _decimal()


class WhatIfSerializer(serializers.Serializer):
    from_ = serializers.CharField(help_text="provider:model")
    to = serializers.CharField(help_text="provider:model")
    calls = serializers.IntegerField()
    cost_before = _decimal()
    cost_after = _decimal("null: the target has no price.")
    saving = _decimal()

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class SavingsSerializer(serializers.Serializer):
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    customer = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    caching = CachingSerializer()
    routing = WhatIfSerializer(many=True)
    distillation = WhatIfSerializer(many=True)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class SeatCostSerializer(serializers.Serializer):
    median = _decimal()
    p90 = _decimal()
    max = _decimal()


class PremiumPlanSerializer(serializers.Serializer):
    plan = serializers.CharField()
    seat_fee = _decimal()
    currency = serializers.CharField()
    seat_fee_usd = _decimal("null: no FX rate for the fee's currency.")
    seats = serializers.IntegerField()
    ai_cost_per_seat_usd = SeatCostSerializer()
    seats_over_fee = serializers.IntegerField()
    share_over_fee = _decimal()
    tier_margin_percent = _decimal()
    target_margin_percent = _decimal()
    fair_use_cap_usd = _decimal("null: no cap needed.")
    fair_use_cap_percentile = _decimal()
    missing_rate = serializers.BooleanField()


class PremiumBreakEvenSerializer(serializers.Serializer):
    from_ = serializers.DateTimeField()
    to = serializers.DateTimeField()
    plans = PremiumPlanSerializer(many=True)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
