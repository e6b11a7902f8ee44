"""Parsing of the API's batch bodies: one object, or {"<key>": [...]} of up to N items.

Shared by every ingest endpoint (events, outcomes) so that they answer bad input the
same way: malformed JSON, a wrong envelope, and one error per bad field of each item.
msgspec checks the item types in one pass; a bad batch takes a slow path that finds
every bad item, not only the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec
from django.conf import settings

from api.errors import ApiError, ErrorDetail

Item = TypeVar("Item", bound=msgspec.Struct)


@dataclass(slots=True)
class BatchResult:
    """The answer of every ingest endpoint."""

    accepted: int = 0  # stored or moved by this request
    duplicates: int = 0  # already so: nothing changed
    conflicts: list[str] = field(default_factory=list)  # ids stored with another payload

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
        }


MAX_UTC_OFFSET = timedelta(hours=16)
_DECIMAL_RE = re.compile(r"-?\d{1,12}(?:\.\d{1,12})?")
_MSGSPEC_PATH_RE = re.compile(r" - at `\$\.?([^`]*)`$")


# How deep a request's JSON may nest: far more than any payload needs (`properties` and
# `metadata` included), far less than a parser's stack.
MAX_JSON_DEPTH = 32


def decode_json_body(body: bytes) -> Any:
    """The body as JSON; 400 for what is not JSON, not UTF-8 (msgspec also refuses a lone
    surrogate escape), or nested deeper than the decoder goes. The free-form parts of an
    item (`properties`) are checked for depth by properties_json."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ApiError(
            [ErrorDetail(code="malformed_json", message=f"Malformed JSON: {exc}")]
        ) from exc
    except RecursionError as exc:
        raise ApiError([too_deep(None)]) from exc


def too_deep(field: str | None) -> ErrorDetail:
    return ErrorDetail(
        field=field, code="too_deep", message=f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
    )


def json_value_check(value: Any) -> None:
    """Raise ApiError (400) when decoded JSON nests deeper than MAX_JSON_DEPTH or holds a
    string that is not Unicode text (a lone surrogate, `\\ud800`, which JSON's escapes
    allow and no database can store), naming the top-level field it is under."""
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _problem(key, 1) or _problem(item, 1)
            if problem is not None:
                raise ApiError([problem(_printable(key))])
    elif (problem := _problem(value, 0)) is not None:
        raise ApiError([problem(None)])


def _problem(value: Any, depth: int) -> Any:
    """A maker of the error for `value` at `depth`, or None when it is fine."""
    if depth > MAX_JSON_DEPTH:
        return too_deep
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return lambda field: ErrorDetail(
                field=field, code="invalid_text", message="Holds text that is not Unicode."
            )
        return None
    children: Any = ()
    if isinstance(value, dict):
        children = [part for pair in value.items() for part in pair]
    elif isinstance(value, list):
        children = value
    for child in children:
        problem = _problem(child, depth + 1)
        if problem is not None:
            return problem
    return None


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode()


def batch_items(raw: Any, *, key: str, max_items: int) -> list[Any]:
    """The items of a body that is one item, or `{key: [items]}`."""
    if not isinstance(raw, dict):
        raise ApiError(
            [
                ErrorDetail(
                    code="invalid_body",
                    message=f"The body must be an object or {{{key!r}: [...]}}.",
                )
            ]
        )
    if key not in raw:
        return [raw]
    if set(raw) != {key}:
        extra = sorted(set(raw) - {key})[0]
        raise ApiError(
            [ErrorDetail(field=extra, code="unknown_field", message=f"A batch holds only `{key}`.")]
        )
    items = raw[key]
    if not isinstance(items, list) or not items:
        raise ApiError(
            [
                ErrorDetail(
                    field=key, code="invalid_type", message=f"`{key}` must be a non-empty array."
                )
            ]
        )
    if len(items) > max_items:
        raise ApiError(
            [
                ErrorDetail(
                    field=key,
                    code=f"too_many_{key}",
                    message=f"A batch holds at most {max_items} {key}; this one has {len(items)}.",
                )
            ]
        )
    return items


def msgspec_error(error: msgspec.ValidationError, index: int) -> ErrorDetail:
    """msgspec says "Expected `int` >= 0 - at `$.input_tokens`": split it into the API's
    code, field and message."""
    text = str(error)
    field: str | None = None
    path = _MSGSPEC_PATH_RE.search(text)
    if path:
        field = path.group(1) or None
        text = text[: path.start()]
    if text.startswith("Object missing required field"):
        code, field = "required", text.split("`")[1]
    elif text.startswith("Object contains unknown field"):
        code, field = "unknown_field", text.split("`")[1]
    elif " got " in text:
        code = "invalid_type"
    elif ">=" in text or "<=" in text or "length" in text:
        code = "out_of_range"
    else:
        code = "invalid"
    return ErrorDetail(code=code, message=text, field=field, index=index)


def convert_items(
    raw_items: list[Any], item_type: type[Item]
) -> tuple[list[Item | None], list[ErrorDetail]]:
    """Typed items (None where an item is bad) and one error per bad item."""
    try:
        return msgspec.convert(raw_items, list[item_type]), []  # type: ignore[valid-type]
    except msgspec.ValidationError:
        pass
    items: list[Item | None] = []
    errors: list[ErrorDetail] = []
    for index, raw_item in enumerate(raw_items):
        try:
            items.append(msgspec.convert(raw_item, item_type))
        except msgspec.ValidationError as exc:
            items.append(None)
            errors.append(msgspec_error(exc, index))
    return items, errors


def parse_decimal_string(value: str, field: str) -> tuple[Decimal | None, ErrorDetail | None]:
    """A non-negative decimal string with at most 12 integer and 12 fractional digits."""
    if _DECIMAL_RE.fullmatch(value) is None:
        return None, ErrorDetail(
            field=field,
            code="invalid_decimal",
            message=f'`{field}` must be a decimal string such as "0.0125".',
        )
    amount = Decimal(value)
    if amount < 0:
        return None, ErrorDetail(field=field, code="negative", message=f"`{field}` is negative.")
    return amount, None


def parse_timestamp(value: str | None, *, now: datetime) -> tuple[datetime, ErrorDetail | None]:
    """An ISO 8601 timestamp with an offset, at most METERING_FUTURE_TOLERANCE_SECONDS
    ahead and at most METERING_LATE_EVENT_WINDOW_DAYS back; `now` when absent."""
    if value is None:
        return now, None
    try:
        timestamp = datetime.fromisoformat(value)
    except ValueError:
        return now, ErrorDetail(
            field="timestamp",
            code="invalid_timestamp",
            message="`timestamp` must be ISO 8601 with an offset.",
        )
    offset = timestamp.utcoffset()
    if offset is None:
        return now, ErrorDetail(
            field="timestamp",
            code="timestamp_without_offset",
            message="`timestamp` needs a UTC offset, e.g. `Z` or `+02:00`.",
        )
    if abs(offset) >= MAX_UTC_OFFSET:  # PostgreSQL stores offsets up to 15:59
        return now, ErrorDetail(
            field="timestamp",
            code="invalid_timestamp",
            message="`timestamp` has a UTC offset beyond ±15:59.",
        )
    if timestamp > now + timedelta(seconds=settings.METERING_FUTURE_TOLERANCE_SECONDS):
        return now, ErrorDetail(
            field="timestamp",
            code="timestamp_in_future",
            message="`timestamp` is more than "
            f"{settings.METERING_FUTURE_TOLERANCE_SECONDS} s ahead.",
        )
    if timestamp < now - timedelta(days=settings.METERING_LATE_EVENT_WINDOW_DAYS):
        return now, ErrorDetail(
            field="timestamp",
            code="timestamp_too_old",
            message="`timestamp` is older than the late-event window of "
            f"{settings.METERING_LATE_EVENT_WINDOW_DAYS} days.",
        )
    return timestamp, None


# PostgreSQL's text and jsonb cannot hold U+0000: strings with it are refused at the edge
# (with the field named) rather than failing in the database.
NO_NUL = r"^[^\x00]*$"


def text(*, max_length: int, min_length: int = 0) -> Any:
    """A string field of an ingest item: bounded, and without U+0000."""
    return Annotated[
        str, msgspec.Meta(min_length=min_length, max_length=max_length, pattern=NO_NUL)
    ]


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def properties_json(properties: dict[str, Any] | None) -> tuple[bytes, ErrorDetail | None]:
    """The `properties` object encoded, or an error when it is over the size limit, nests
    too deep, or holds U+0000."""
    if properties is None:
        return b"{}", None
    problem = _problem(properties, 1)
    if problem is not None:
        return b"{}", problem("properties")
    encoded = msgspec.json.encode(properties)
    if holds_nul(properties):
        return encoded, ErrorDetail(
            field="properties",
            code="invalid",
            message="`properties` must not contain the character U+0000.",
        )
    if len(encoded) > settings.METERING_MAX_PROPERTIES_BYTES:
        return encoded, ErrorDetail(
            field="properties",
            code="too_large",
            message=f"`properties` is larger than {settings.METERING_MAX_PROPERTIES_BYTES} bytes.",
        )
    return encoded, None


def raise_if_errors(errors: list[ErrorDetail], status_code: int = 400) -> None:
    if errors:
        raise ApiError(sorted(errors, key=lambda error: error.index or 0), status_code)
