"""DRF serializers of the outcomes endpoints: the OpenAPI description of POST /v1/outcomes
(whose validation is msgspec's, see schemas.py) and the outcome as the API shows it."""

from rest_framework import serializers

from metering.serializers import StrictInputSerializer
from outcomes.models import SENT_STATUSES, DisputeStatus, OutcomeStatus


class OutcomeInputSerializer(serializers.Serializer):
    id = serializers.CharField(
        max_length=200,
        help_text="Your id for the outcome. Events name it in their `outcome` field.",
    )
    customer = serializers.CharField(
        required=False, help_text="The customer's external id; required for a new outcome."
    )
    type = serializers.RegexField(
        r"^[a-z0-9_.-]+$",
        max_length=100,
        required=False,
        help_text="e.g. `resolution`, `invoice_negotiated`; required for a new outcome.",
    )
    status = serializers.ChoiceField(
        [status.value for status in SENT_STATUSES],
        required=False,
        help_text="Default `pending` for a new outcome. Moves: pending -> succeeded | failed. "
        "Re-sending the current status is a duplicate; any other move is a 409.",
    )
    timestamp = serializers.DateTimeField(
        required=False, help_text="When this status happened; ISO 8601 with offset; default now."
    )
    value = serializers.CharField(
        required=False,
        help_text="Money the action saved or earned, as a decimal string, with `currency`.",
    )
    currency = serializers.CharField(required=False, help_text="ISO 4217, with `value`.")
    properties = serializers.DictField(required=False, help_text="Free-form, up to 8 KiB.")
    reservation = serializers.CharField(
        required=False,
        max_length=40,
        help_text="The reservation it was authorized under (`res_…`): it settles it.",
    )


class OutcomeBatchInputSerializer(serializers.Serializer):
    outcomes = OutcomeInputSerializer(many=True, help_text="1 to 1,000 outcomes.")


class OutcomeOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="external_id")
    customer = serializers.CharField(source="customer.external_id")
    type = serializers.CharField()
    status = serializers.ChoiceField(OutcomeStatus.choices)
    occurred_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    reversed_at = serializers.DateTimeField(allow_null=True)
    value = serializers.DecimalField(max_digits=24, decimal_places=12, allow_null=True)
    currency = serializers.CharField(source="value_currency")
    properties = serializers.DictField()


class OutcomeDetailSerializer(OutcomeOutputSerializer):
    calls = serializers.IntegerField(help_text="Calls attributed to this outcome.")
    cost = serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        allow_null=True,
        help_text="USD over the priced calls; null when every call is unpriced.",
    )
    unpriced_calls = serializers.IntegerField()


class DisputeInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(
        max_length=2000, help_text="Why the customer contests it, in their words."
    )


class DisputeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    outcome = serializers.CharField(source="outcome.external_id")
    reason = serializers.CharField()
    status = serializers.ChoiceField(
        DisputeStatus.choices,
        help_text="open; accepted (the outcome is reversed and credited on the next invoice); "
        "rejected (it stands).",
    )
    note = serializers.CharField(help_text="The operator's, with the decision.")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
