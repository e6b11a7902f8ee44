"""What the authorization endpoints take and answer."""

from rest_framework import serializers

from billing.limits.models import LimitMode, ReservationStatus
from metering.serializers import StrictInputSerializer


class AuthorizeInputSerializer(StrictInputSerializer):
    id = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Your id for this authorization: sending it again answers with the "
        "reservation it made (a safe retry).",
    )
    amount = serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        required=False,
        help_text="What it will bill, in the plan's currency. Or outcome_type and quantity.",
    )
    outcome_type = serializers.CharField(max_length=100, required=False)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    user = serializers.CharField(
        max_length=200,
        required=False,
        help_text="The premium seat (end user) it serves: refused past its fair-use cap "
        "under a hard limit that checks fair use.",
    )
    ttl_seconds = serializers.IntegerField(
        min_value=1,
        max_value=86_400,
        default=600,
        help_text="Released by itself if not settled or released by then.",
    )


class SettleInputSerializer(StrictInputSerializer):
    amount = serializers.DecimalField(
        max_digits=30, decimal_places=12, help_text="What the work actually bills."
    )


class SeatSerializer(serializers.Serializer):
    user = serializers.CharField()
    cost = serializers.CharField(help_text="USD: what the seat's AI has cost this period.")
    cap = serializers.CharField(
        allow_null=True,
        help_text="USD: its fair-use cap (the limit's seat_cost_cap, else the plan's from "
        "last month's premium break-even); null: none.",
    )


class AvailableSerializer(serializers.Serializer):
    currency = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    credits = serializers.CharField(help_text="What credits live in the period hold.")
    billed = serializers.CharField(help_text="What the period's usage bills so far.")
    reserved = serializers.CharField(help_text="What open reservations hold.")
    available = serializers.CharField(help_text="credits − billed − reserved.")
    budget = serializers.CharField(allow_null=True, help_text="What the period may bill.")
    budget_left = serializers.CharField(allow_null=True, help_text="budget − billed − reserved.")
    cost = serializers.CharField(help_text="USD: what the period's AI has cost so far.")
    cost_budget = serializers.CharField(allow_null=True, help_text="USD: what it may cost.")
    mode = serializers.ChoiceField(LimitMode.choices)
    checks_credits = serializers.BooleanField()
    checks_fair_use = serializers.BooleanField()
    seat = SeatSerializer(allow_null=True, help_text="The premium seat asked about (`user`).")


class ReservationSerializer(serializers.Serializer):
    id = serializers.CharField()
    customer = serializers.CharField()
    external_id = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.CharField()
    outcome_type = serializers.CharField()
    quantity = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(ReservationStatus.choices)
    expires_at = serializers.DateTimeField()
    settled_amount = serializers.CharField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


class AuthorizationSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    exceeds = serializers.ListField(
        child=serializers.ChoiceField(["credits", "budget", "cost_budget", "fair_use"]),
        help_text="What it exceeds: refused under a hard limit, allowed under a soft one or "
        "none. cost_budget: the period's AI cost has reached its budget; fair_use: the "
        "premium seat (`user`) has cost its cap this period.",
    )
    amount = serializers.CharField(help_text="What was asked, priced.")
    reservation = ReservationSerializer(allow_null=True)
    available = AvailableSerializer(help_text="After the reservation, when allowed.")


def _optional_amount(help_text: str) -> serializers.DecimalField:
    """An amount a limit may leave unset (null: no such check)."""
    return serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        required=False,
        allow_null=True,
        default=None,
        help_text=help_text,
    )


class SpendLimitSerializer(StrictInputSerializer):
    mode = serializers.ChoiceField(LimitMode.choices)
    credits = serializers.BooleanField(
        default=True, help_text="Check against what credits hold (off: postpaid)."
    )
    budget = _optional_amount("What a billing period may bill, plan currency (each period afresh).")
    cost_budget = _optional_amount("USD: what a period's AI may cost payback (each period afresh).")
    fair_use = serializers.BooleanField(
        default=False,
        help_text="Stop serving a premium seat (an authorization's `user`) whose AI has cost "
        "its fair-use cap this period.",
    )
    seat_cost_cap = _optional_amount(
        "USD per seat and period; null: the plan's cap, from last month's premium break-even."
    )
