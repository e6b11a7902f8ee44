"""The outcome wire format (POST /v1/outcomes) and its validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from django.conf import settings

from api.batch import (
    batch_items,
    convert_items,
    decode_json_body,
    parse_decimal_string,
    parse_timestamp,
    properties_json,
    raise_if_errors,
    text,
)
from api.errors import ErrorDetail

OutcomeType = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9_.-]+$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}$")]


class OutcomeIn(msgspec.Struct, forbid_unknown_fields=True):
    id: text(min_length=1, max_length=200)  # type: ignore[valid-type]
    customer: text(min_length=1, max_length=200) | None = None  # type: ignore[valid-type]
    type: OutcomeType | None = None
    # models.SENT_STATUSES (msgspec takes plain strings only in a Literal).
    status: Literal["pending", "succeeded", "failed"] | None = None
    timestamp: str | None = None
    value: str | None = None
    currency: Currency | None = None
    properties: dict[str, Any] | None = None
    # The reservation it was authorized under: once recorded, it settles it.
    reservation: text(max_length=40) | None = None  # type: ignore[valid-type]


@dataclass(slots=True)
class ValidOutcome:
    item: OutcomeIn
    timestamp: datetime
    value: Decimal | None
    currency: str
    properties: dict[str, Any] | None


def _check_item(item: OutcomeIn, *, now: datetime) -> tuple[ValidOutcome | None, list[ErrorDetail]]:
    timestamp, timestamp_error = parse_timestamp(item.timestamp, now=now)
    value, value_error = (None, None)
    if item.value is not None:
        value, value_error = parse_decimal_string(item.value, "value")
    currency_error = None
    if (item.value is None) != (item.currency is None):
        currency_error = ErrorDetail(
            field="currency" if item.currency is None else "value",
            code="value_needs_currency",
            message="`value` and `currency` go together: send both or neither.",
        )
    _, properties_error = properties_json(item.properties)
    errors = [e for e in (timestamp_error, value_error, currency_error, properties_error) if e]
    if errors:
        return None, errors
    currency = item.currency.upper() if item.currency else ""
    return ValidOutcome(item, timestamp, value, currency, item.properties), []


def parse_outcome_batch(body: bytes, *, now: datetime) -> list[ValidOutcome]:
    """Decode and check a POST /v1/outcomes body, or raise ApiError naming every bad field."""
    raw_items = batch_items(
        decode_json_body(body), key="outcomes", max_items=settings.METERING_MAX_BATCH
    )
    items, errors = convert_items(raw_items, OutcomeIn)
    valid: list[ValidOutcome] = []
    for index, item in enumerate(items):
        if item is None:
            continue
        outcome, item_errors = _check_item(item, now=now)
        if outcome is not None:
            valid.append(outcome)
        errors.extend(
            ErrorDetail(code=e.code, message=e.message, field=e.field, index=index)
            for e in item_errors
        )
    raise_if_errors(errors)
    return valid
