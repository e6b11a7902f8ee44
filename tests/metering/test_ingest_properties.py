"""Properties of the ingest validators beyond the listed cases: whatever a client sends,
a valid event round-trips exactly (no float anywhere), a bad one is refused naming its
field and index, and the idempotency fingerprint depends on content, not key order."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import ApiError
from metering.schemas import MAX_TOKENS, fingerprint_of, parse_event_batch

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
pytestmark = pytest.mark.django_db  # settings only; nothing is written

texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)
ids = texts.filter(bool)
tokens = st.integers(min_value=0, max_value=10**9)
costs = st.decimals(min_value=0, max_value=Decimal("999999999999"), places=12, allow_nan=False)
offsets = st.integers(min_value=-30 * 24 * 3600, max_value=0)


@st.composite
def events(draw: st.DrawFn) -> dict:
    input_tokens = draw(tokens)
    cache_read = draw(st.integers(min_value=0, max_value=input_tokens))
    event = {
        "id": draw(ids),
        "customer": draw(ids),
        "timestamp": (NOW + timedelta(seconds=draw(offsets))).isoformat(),
        "provider": draw(texts),
        "model": draw(texts),
        "input_tokens": input_tokens,
        "output_tokens": draw(tokens),
        "cache_read_tokens": cache_read,
        "feature": draw(texts),
        "properties": draw(st.dictionaries(texts, texts | st.integers(), max_size=3)),
    }
    if draw(st.booleans()):
        event["cost"] = f"{draw(costs):f}"
    return event


def parse(items: list[dict]):
    return parse_event_batch(json.dumps({"events": items}).encode(), now=NOW)


@settings(max_examples=200, deadline=None)
@given(st.lists(events(), min_size=1, max_size=5))
def test_a_valid_event_round_trips_exactly(items):
    parsed = parse(items)

    assert len(parsed) == len(items)
    for event, sent in zip(parsed, items, strict=True):
        assert event.item.id == sent["id"]
        assert event.timestamp == datetime.fromisoformat(sent["timestamp"])
        assert (event.item.input_tokens, event.item.output_tokens) == (
            sent["input_tokens"],
            sent["output_tokens"],
        )
        if "cost" in sent:
            assert isinstance(event.cost, Decimal)
            assert event.cost == Decimal(sent["cost"])  # exact, never through a float
        else:
            assert event.cost is None
        assert json.loads(event.properties_json) == sent["properties"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(events(), min_size=1, max_size=4),
    st.data(),
    st.sampled_from(
        [
            ("input_tokens", -1),
            ("output_tokens", MAX_TOKENS + 1),
            ("cost", "-1"),
            ("cost", "1e3"),
            ("cost", 0.5),
            ("timestamp", "yesterday"),
            ("id", ""),
            ("user", "a\x00b"),
        ]
    ),
)
def test_a_bad_field_is_refused_naming_it_and_its_index(items, data, bad):
    index = data.draw(st.integers(min_value=0, max_value=len(items) - 1))
    field, value = bad
    items[index] = {**items[index], field: value}

    with pytest.raises(ApiError) as refused:
        parse(items)

    assert (index, field) in {(e.index, e.field) for e in refused.value.errors}


@settings(max_examples=200, deadline=None)
@given(events(), st.randoms(use_true_random=False))
def test_the_fingerprint_ignores_key_order_but_not_content(event, random):
    keys = list(event)
    random.shuffle(keys)
    reordered = {key: event[key] for key in keys}

    assert fingerprint_of(reordered) == fingerprint_of(event)
    assert fingerprint_of({**event, "output_tokens": event["output_tokens"] + 1}) != (
        fingerprint_of(event)
    )
