"""DRF serializers: the customer endpoints' validation, and the OpenAPI description of
the events endpoint (whose hot path validates with msgspec, see schemas.py)."""

import re
from decimal import Decimal
from typing import Any

import msgspec
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from api.batch import holds_nul
from metering.schemas import MAX_TOKENS

_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
MAX_METADATA_BYTES = 8 * 1024


class ErrorItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(required=False, help_text="Position in the batch.")
    field = serializers.CharField(required=False, help_text="The field at fault.")
    code = serializers.CharField(help_text="Machine-readable reason, e.g. `unknown_customer`.")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    errors = ErrorItemSerializer(many=True)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset: a moment without one is refused, not guessed."""

    def to_internal_value(self, value: Any) -> Any:
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
        except ValueError:  # well formed, not a moment (minute 99): the field says so
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            self.fail("no_offset")
        return super().to_internal_value(value)

    default_error_messages = {
        **serializers.DateTimeField.default_error_messages,
        "no_offset": "Give a UTC offset (`Z` or `+02:00`).",
    }


def _price_per_mtok(help_text: str, *, required: bool = True) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=18,
        decimal_places=6,
        min_value=Decimal(0),
        required=required,
        allow_null=not required,
        help_text=help_text,
    )


class StrictInputSerializer(serializers.Serializer):
    """An input whose unknown fields (an id, a timestamp, an invoice total) are refused by
    name rather than ignored: nothing is set that the API does not own."""

    def to_internal_value(self, data: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            refusal = serializers.ErrorDetail("Not a field of this endpoint.", code="unknown_field")
            raise serializers.ValidationError({name: [refusal] for name in unknown})
        return super().to_internal_value(data)


class CustomerInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    currency = serializers.CharField(
        required=False, help_text="ISO 4217 billing currency, e.g. `USD`, `EUR`, `JPY`."
    )
    metadata = serializers.DictField(required=False, help_text="Free-form, up to 8 KiB of JSON.")

    def validate_currency(self, value: str) -> str:
        if not _CURRENCY_RE.match(value):
            raise serializers.ValidationError("Must be a three-letter ISO 4217 code.")
        return value.upper()

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        if holds_nul(value):
            raise serializers.ValidationError("Must not contain the character U+0000.")
        if len(msgspec.json.encode(value)) > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"Larger than {MAX_METADATA_BYTES} bytes.")
        return value


class CustomerOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    currency = serializers.CharField()
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _tokens(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_TOKENS, default=0, help_text=help_text
    )


class EventInputSerializer(serializers.Serializer):
    id = serializers.CharField(
        max_length=200,
        help_text="Your id for this call: the idempotency key. Same id and payload again is a "
        "duplicate (nothing changes); same id with another payload is a conflict.",
    )
    customer = serializers.CharField(max_length=200, help_text="The customer's external id.")
    timestamp = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601 with offset; default now; at most 5 minutes ahead and at most the "
        "late-event window (35 days by default) back.",
    )
    provider = serializers.CharField(max_length=100, required=False, help_text="e.g. `openai`.")
    model = serializers.CharField(max_length=200, required=False, help_text="e.g. `gpt-4o`.")
    input_tokens = _tokens("All prompt tokens, cache reads and writes included.")
    output_tokens = _tokens("Completion tokens.")
    cache_read_tokens = _tokens("Prompt tokens read from the provider's cache (part of input).")
    cache_write_tokens = _tokens("Prompt tokens written to the provider's cache (part of input).")
    cost = serializers.CharField(
        required=False,
        help_text="Explicit cost in USD as a decimal string (up to 12 decimals); wins over "
        "catalog and override prices.",
    )
    outcome = serializers.CharField(max_length=200, required=False, help_text="Outcome id.")
    user = serializers.CharField(max_length=200, required=False, help_text="End user id.")
    feature = serializers.CharField(max_length=100, required=False)
    tier = serializers.CharField(max_length=50, required=False, help_text="e.g. `premium`.")
    prompt_hash = serializers.CharField(max_length=128, required=False)
    cache_hit = serializers.BooleanField(required=False, allow_null=True)
    properties = serializers.DictField(required=False, help_text="Free-form, up to 8 KiB.")
    reservation = serializers.CharField(
        required=False,
        max_length=40,
        help_text="The reservation this call was authorized under (`res_…`): it settles it.",
    )


class EventBatchInputSerializer(serializers.Serializer):
    events = EventInputSerializer(many=True, help_text="1 to 1,000 events.")


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(help_text="Events already stored with this payload.")
    conflicts = serializers.ListField(
        child=serializers.CharField(),
        help_text="Ids already stored with another payload; the original is kept.",
    )


class UsageTotalsSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(
        max_digits=30,
        decimal_places=12,
        allow_null=True,
        help_text="USD, the sum over priced calls; null when every call is unpriced.",
    )
    unpriced_calls = serializers.IntegerField(help_text="Calls with no known price yet.")


class ModelUsageSerializer(UsageTotalsSerializer):
    provider = serializers.CharField()
    model = serializers.CharField()


class FeatureUsageSerializer(UsageTotalsSerializer):
    feature = serializers.CharField(allow_null=True, help_text="null: calls without a feature.")


class UsageOutputSerializer(serializers.Serializer):
    customer = serializers.CharField()
    start = serializers.DateTimeField(help_text="Inclusive.")
    end = serializers.DateTimeField(help_text="Exclusive.")
    currency = serializers.CharField(help_text="Costs are in USD.")
    totals = UsageTotalsSerializer()
    by_model = ModelUsageSerializer(many=True)
    by_feature = FeatureUsageSerializer(many=True)


class PriceOverrideInputSerializer(StrictInputSerializer):
    """An operator's price for a model (USD per million tokens, at most 6 decimals)."""

    provider = serializers.CharField(max_length=100)
    model = serializers.CharField(max_length=200)
    effective_from = AwareDateTimeField(help_text="ISO 8601 with offset.")
    input_per_mtok = _price_per_mtok("USD per million input tokens.")
    output_per_mtok = _price_per_mtok("USD per million output tokens.")
    cache_read_per_mtok = _price_per_mtok("Empty: the input price.", required=False)
    cache_write_per_mtok = _price_per_mtok("Empty: the input price.", required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


class PriceOverrideSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField()
    model = serializers.CharField()
    effective_from = serializers.DateTimeField()
    input_per_mtok = serializers.CharField()
    output_per_mtok = serializers.CharField()
    cache_read_per_mtok = serializers.CharField(allow_null=True)
    cache_write_per_mtok = serializers.CharField(allow_null=True)
    note = serializers.CharField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> Any:
        body = super().to_representation(instance)
        for name in (
            "input_per_mtok",
            "output_per_mtok",
            "cache_read_per_mtok",
            "cache_write_per_mtok",
        ):
            value = getattr(instance, name)
            body[name] = None if value is None else f"{value.normalize():f}"
        return body
