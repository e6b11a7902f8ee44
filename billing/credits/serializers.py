"""What the credits endpoints take and answer (the answers are built in api.py; these
describe them for the OpenAPI schema)."""

from rest_framework import serializers

from billing.credits.models import EntryKind, GrantKind, TopUpStatus
from metering.serializers import AwareDateTimeField, StrictInputSerializer


def _money(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(help_text=f"A decimal string. {help_text}".strip())


class GrantInputSerializer(StrictInputSerializer):
    id = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Your id for the grant: sending it again is the same grant (a safe "
        "retry). Made up by payback when left out.",
    )
    amount = serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        help_text="Above 0, in whole minor units of the currency (19.99 USD, not 19.999).",
    )
    currency = serializers.CharField(
        required=False,
        help_text="ISO 4217; default: the currency of the customer's plan.",
    )
    priority = serializers.IntegerField(
        min_value=0,
        max_value=1_000_000,
        default=100,
        help_text="Lower is drawn first; then the earliest expiry; then the oldest grant.",
    )
    effective_at = AwareDateTimeField(required=False, help_text="Default: now.")
    expires_at = AwareDateTimeField(
        required=False, allow_null=True, help_text="Default: never. After effective_at."
    )
    description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default=""
    )

    def validate_currency(self, value: str) -> str:
        return value.strip().upper()


class VoidInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class GrantSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Your id for the grant (or payback's).")
    kind = serializers.ChoiceField(GrantKind.choices)
    currency = serializers.CharField()
    amount = _money("What was granted.")
    balance = _money("What it holds now.")
    priority = serializers.IntegerField()
    effective_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    description = serializers.CharField()
    voided_at = serializers.DateTimeField(allow_null=True)
    void_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class BalanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    available = _money("What grants live in the period still hold.")
    granted = _money()
    drawn = _money("By invoices.")
    expired = _money()
    voided = _money()


class CreditsSerializer(serializers.Serializer):
    customer = serializers.CharField()
    period_start = serializers.DateTimeField(
        help_text="The customer's running billing period (now, without a plan): `available` "
        "counts the grants live in it, as its invoice will."
    )
    period_end = serializers.DateTimeField()
    balances = BalanceSerializer(many=True)


class EntrySerializer(serializers.Serializer):
    grant = serializers.CharField(help_text="The grant's id.")
    kind = serializers.ChoiceField(EntryKind.choices)
    amount = _money("Signed: + granted, − drawn, expired or voided.")
    currency = serializers.CharField()
    invoice_id = serializers.IntegerField(allow_null=True, help_text="The invoice that drew it.")
    at = serializers.DateTimeField()


class TopUpInputSerializer(StrictInputSerializer):
    id = serializers.CharField(
        max_length=200, required=False, help_text="Your id: sending it again is the same top-up."
    )
    amount = serializers.DecimalField(
        max_digits=30, decimal_places=12, help_text="Above 0, whole minor units."
    )
    currency = serializers.CharField(
        required=False, help_text="ISO 4217; default: the currency of the customer's plan."
    )

    def validate_currency(self, value: str) -> str:
        return value.strip().upper()


class TopUpSerializer(serializers.Serializer):
    id = serializers.CharField()
    currency = serializers.CharField()
    amount = _money()
    auto = serializers.BooleanField(help_text="Made by the auto top-up.")
    status = serializers.ChoiceField(TopUpStatus.choices)
    hosted_invoice_url = serializers.CharField(help_text="Stripe's page of its invoice.")
    grant = serializers.CharField(allow_null=True, help_text="The grant made once it is paid.")
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)


class AutoTopUpSerializer(StrictInputSerializer):
    threshold = serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        help_text="Buy when what is available falls below this (0 or more).",
    )
    amount = serializers.DecimalField(
        max_digits=30, decimal_places=12, help_text="What to buy, whole minor units."
    )
    currency = serializers.CharField(required=False, help_text="Default: the plan's.")

    def validate_currency(self, value: str) -> str:
        return value.strip().upper()


class LiabilitySerializer(serializers.Serializer):
    currency = serializers.CharField()
    liability = _money("What bought credits still hold: owed to customers.")
