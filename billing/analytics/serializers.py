"""DRF serializers of analytics: the margin report, savings, premium break-even."""

from typing import Any

from rest_framework import serializers

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
    disputed = serializers.IntegerField(
        allow_null=True, help_text="Of those that succeeded in the window: disputed."
    )
    disputes_accepted = serializers.IntegerField(
        allow_null=True, help_text="Of those: a dispute accepted (reversed, credited)."
    )
    dispute_rate_percent = serializers.CharField(
        allow_null=True,
        help_text="Disputed per hundred that succeeded (reversed since included); null: none "
        "succeeded.",
    )


class MarginRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="The group; null: none (or totals).")
    revenue = _decimal("Reporting currency; void and uncollectible invoices excluded.")
    written_off = _decimal("Billed on void and uncollectible invoices: not revenue.")
    discount = _decimal(
        "Promotional (free) credits used, reporting currency: a discount `revenue` is net of."
    )
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
