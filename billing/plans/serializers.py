"""DRF serializers of plans: customers with their plan and seats, plan documents."""

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rest_framework import serializers

from billing.plans.models import Plan
from metering.serializers import (
    AwareDateTimeField,
    CustomerInputSerializer,
    CustomerOutputSerializer,
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


class TierDocSerializer(serializers.Serializer):
    unit_price = serializers.CharField(
        required=False, help_text="Per unit in the tier; absent: a flat fee only."
    )
    up_to = serializers.IntegerField(required=False, help_text="Absent: and above.")
    flat_fee = serializers.CharField(
        required=False, help_text="Billed once when the period's units reach the tier."
    )
    percentage = serializers.CharField(
        required=False,
        help_text="A graduated percentage: percent of the period's value in the tier "
        "(`up_to` bounds the value then).",
    )


class DimensionPriceDocSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="A value of the dimension (the property, as text).")
    unit_price = serializers.CharField()


class OutcomePriceDocSerializer(serializers.Serializer):
    """A price per succeeded outcome of one type; the fields a price does not use are
    left out."""

    type = serializers.CharField()
    unit_price = serializers.CharField(required=False)
    percentage = serializers.CharField(required=False)
    floor = serializers.CharField(required=False)
    cap = serializers.CharField(required=False)
    fixed_fee = serializers.CharField(
        required=False, help_text="Per outcome, added to its percentage, inside the clamp."
    )
    free_value = serializers.CharField(
        required=False, help_text="The period's first value that is not charged."
    )
    included = serializers.IntegerField(required=False)
    tier_mode = serializers.ChoiceField(["graduated", "volume"], required=False)
    tiers = TierDocSerializer(many=True, required=False)
    package_size = serializers.IntegerField(required=False)
    dimension = serializers.CharField(
        required=False,
        help_text="A property of the outcome the unit price depends on (`channel`): "
        "`prices` for some of its values, `unit_price` for any other (or none).",
    )
    prices = DimensionPriceDocSerializer(many=True, required=False)


class DimensionMarkupDocSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="A value of the call's dimension.")
    markup = serializers.CharField()


class PassThroughDocSerializer(serializers.Serializer):
    markup = serializers.CharField(help_text="With a dimension: the markup of any other value.")
    feature = serializers.CharField(required=False, help_text="Absent: every other feature.")
    dimension = serializers.ChoiceField(
        ["tier", "provider", "model"],
        required=False,
        help_text="A property of the call the markup depends on; `markups` for some values.",
    )
    markups = DimensionMarkupDocSerializer(many=True, required=False)


class RecurringCreditDocSerializer(serializers.Serializer):
    amount = serializers.CharField(help_text="Granted at each period's start.")
    priority = serializers.IntegerField(required=False)
    rollover = serializers.BooleanField(
        required=False, help_text="false: what is left expires at the period's end."
    )
    description = serializers.CharField(required=False)


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
    credits = RecurringCreditDocSerializer(many=True)

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
