"""Properties over the classes of hostile input (tests/test_hostile_input.py has one of
each): whatever bytes, nesting, text or timestamps a client sends, the parsers answer with
the API's 400 (ApiError, or DRF's ParseError) and nothing else escapes."""

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from api.errors import ApiError
from api.parsers import SafeJSONParser
from metering.schemas import parse_event_batch
from outcomes.schemas import parse_outcome_batch

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
pytestmark = pytest.mark.django_db  # settings only; nothing is written

PARSERS = [
    lambda body: parse_event_batch(body, now=NOW),
    lambda body: parse_outcome_batch(body, now=NOW),
    lambda body: SafeJSONParser().parse(io.BytesIO(body)),
]
# Any text, lone surrogates included (JSON can carry them as \\ud800 escapes).
any_text = st.text(st.characters(codec=None), max_size=20)


def nested(depth: int, leaf: object) -> str:
    """JSON text of `leaf` inside `depth` arrays (built as text: json.dumps itself stops
    at Python's recursion limit)."""
    return "[" * depth + json.dumps(leaf) + "]" * depth


def refused_or_accepted(parse, body: bytes) -> None:
    try:
        parse(body)
    except (ApiError, ParseError):
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused(body):
    for parse in PARSERS:
        refused_or_accepted(parse, body)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=3000), any_text, any_text)
def test_any_nesting_and_any_text_are_parsed_or_refused(depth, key, value):
    # ensure_ascii: surrogates travel as \\ud800 escapes
    body = (
        '{"id": "x", "customer": "acme", "type": "resolution", "properties": {'
        f"{json.dumps(key)}: {nested(depth, value)}}}}}"
    ).encode()
    for parse in PARSERS:
        refused_or_accepted(parse, body)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
def test_any_utc_offset_is_parsed_or_refused_by_the_bound_postgresql_keeps(minutes):
    moment = (NOW - timedelta(minutes=5)).astimezone(timezone(timedelta(minutes=minutes)))
    for parse, item in (
        (PARSERS[0], {"id": "x", "customer": "acme"}),
        (PARSERS[1], {"id": "x", "customer": "acme", "type": "t"}),
    ):
        item["timestamp"] = moment.isoformat()
        try:
            [parsed] = parse(json.dumps(item).encode())
        except ApiError as refused:
            assert abs(minutes) >= 16 * 60
            assert refused.errors[0].field == "timestamp"
        else:
            assert abs(minutes) < 16 * 60
            assert parsed.timestamp == moment
