"""Bad input to POST /v1/events: a 4xx, a JSON error naming the field, nothing stored."""

from datetime import timedelta

import pytest
from django.utils import timezone

from metering.models import EventKey, UsageEvent
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    return customer_create(external_id="acme")


def assert_refused(response, status, *, field=None, code=None, index=None):
    assert response.status_code == status, response.content
    errors = response.json()["errors"]
    assert errors, "an error body must name at least one error"
    matching = [
        e
        for e in errors
        if (field is None or e.get("field") == field)
        and (code is None or e["code"] == code)
        and (index is None or e.get("index") == index)
    ]
    assert matching, errors
    assert all(e["message"] for e in errors)
    assert UsageEvent.objects.count() == 0
    assert EventKey.objects.count() == 0


def post(client, body, **extra):
    return client.post("/v1/events", body, format="json", **extra)


def test_malformed_json(client_with_key, customer):
    response = client_with_key.post("/v1/events", b'{"id": "x",', content_type="application/json")
    assert_refused(response, 400, code="malformed_json")


def test_non_json_number_literals_are_malformed_json(client_with_key, customer):
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"id": "x", "customer": "acme", "cost": ' + literal + b"}"
        response = client_with_key.post("/v1/events", body, content_type="application/json")
        assert_refused(response, 400, code="malformed_json")


def test_wrong_content_type(client_with_key, customer):
    response = client_with_key.post(
        "/v1/events", "id=x&customer=acme", content_type="application/x-www-form-urlencoded"
    )
    assert_refused(response, 415, code="unsupported_media_type")


def test_body_that_is_not_an_object(client_with_key, customer):
    assert_refused(post(client_with_key, [1, 2]), 400, code="invalid_body")


@pytest.mark.parametrize("missing", ["id", "customer"])
def test_missing_required_field(client_with_key, customer, missing):
    body = event_payload(customer)
    del body[missing]
    assert_refused(post(client_with_key, body), 400, field=missing, code="required")


def test_unknown_customer(client_with_key, customer):
    body = event_payload("nobody")
    assert_refused(post(client_with_key, body), 400, field="customer", code="unknown_customer")


def test_unknown_field_is_named(client_with_key, customer):
    body = event_payload(customer, input_tokenz=5)
    assert_refused(post(client_with_key, body), 400, field="input_tokenz", code="unknown_field")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (-1, "out_of_range"),
        (1.5, "invalid_type"),
        (True, "invalid_type"),
        ("12", "invalid_type"),
        (10**13, "out_of_range"),
        (2**70, "out_of_range"),
    ],
)
@pytest.mark.parametrize(
    "field", ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]
)
def test_bad_token_counts(client_with_key, customer, field, value, code):
    body = event_payload(customer, input_tokens=10**6)
    body[field] = value
    assert_refused(post(client_with_key, body), 400, field=field, code=code)


def test_cache_tokens_cannot_exceed_input_tokens(client_with_key, customer):
    body = event_payload(customer, input_tokens=100, cache_read_tokens=80, cache_write_tokens=30)
    assert_refused(post(client_with_key, body), 400, code="exceeds_input_tokens")


@pytest.mark.parametrize(
    ("cost", "code"),
    [
        ("-0.01", "negative"),
        ("NaN", "invalid_decimal"),
        ("Infinity", "invalid_decimal"),
        ("1e3", "invalid_decimal"),
        ("abc", "invalid_decimal"),
        ("1.5\n", "invalid_decimal"),
        (" 1.5", "invalid_decimal"),
        ("1_000", "invalid_decimal"),
        ("", "invalid_decimal"),
        ("0.0000000000001", "invalid_decimal"),  # more than 12 decimals: not exact
        (1.5, "invalid_type"),  # a JSON number: money travels as strings
    ],
)
def test_bad_cost(client_with_key, customer, cost, code):
    assert_refused(
        post(client_with_key, event_payload(customer, cost=cost)), 400, field="cost", code=code
    )


def test_timestamp_without_offset(client_with_key, customer):
    body = event_payload(customer, timestamp="2026-11-27T10:00:00")
    assert_refused(
        post(client_with_key, body), 400, field="timestamp", code="timestamp_without_offset"
    )


def test_timestamp_that_is_not_a_date(client_with_key, customer):
    body = event_payload(customer, timestamp="yesterday")
    assert_refused(post(client_with_key, body), 400, field="timestamp", code="invalid_timestamp")


def test_timestamp_more_than_five_minutes_ahead(client_with_key, customer):
    ahead = (timezone.now() + timedelta(minutes=6)).isoformat()
    body = event_payload(customer, timestamp=ahead)
    assert_refused(post(client_with_key, body), 400, field="timestamp", code="timestamp_in_future")


def test_timestamp_a_little_ahead_is_accepted(client_with_key, customer):
    ahead = (timezone.now() + timedelta(minutes=4)).isoformat()
    assert post(client_with_key, event_payload(customer, timestamp=ahead)).status_code == 200


def test_timestamp_older_than_the_late_event_window(client_with_key, customer, settings):
    old = timezone.now() - timedelta(days=settings.METERING_LATE_EVENT_WINDOW_DAYS + 1)
    body = event_payload(customer, timestamp=old.isoformat())
    assert_refused(post(client_with_key, body), 400, field="timestamp", code="timestamp_too_old")


@pytest.mark.parametrize("properties", [[1, 2], "text", 5])
def test_properties_not_an_object(client_with_key, customer, properties):
    body = event_payload(customer, properties=properties)
    assert_refused(post(client_with_key, body), 400, field="properties", code="invalid_type")


def test_properties_over_8_kib(client_with_key, customer):
    body = event_payload(customer, properties={"blob": "x" * 8200})
    assert_refused(post(client_with_key, body), 400, field="properties", code="too_large")


def test_more_than_1000_events(client_with_key, customer):
    body = {"events": [event_payload(customer) for _ in range(1001)]}
    assert_refused(post(client_with_key, body), 400, field="events", code="too_many_events")


def test_empty_batch(client_with_key, customer):
    assert_refused(post(client_with_key, {"events": []}), 400, field="events")


def test_body_over_the_size_limit_is_413(client_with_key, customer, settings):
    body = b'{"events": [' + b" " * (settings.API_MAX_BODY_BYTES + 1) + b"]}"
    response = client_with_key.post("/v1/events", body, content_type="application/json")
    assert_refused(response, 413, code="body_too_large")


def test_a_batch_with_bad_items_is_refused_whole_with_one_error_per_bad_index(
    client_with_key, customer
):
    good = event_payload(customer)
    events = [
        good,
        event_payload(customer, input_tokens=-5),
        event_payload(customer),
        event_payload("nobody"),
        event_payload(customer, cost="NaN"),
    ]
    response = post(client_with_key, {"events": events})
    assert_refused(response, 400)
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [
        (1, "input_tokens"),
        (4, "cost"),
    ]
    # Unknown customers are looked up once the items are well-formed.
    events[1] = event_payload(customer)
    events[4] = event_payload(customer)
    response = post(client_with_key, {"events": events})
    assert_refused(response, 400, index=3, field="customer", code="unknown_customer")


def test_every_bad_index_of_one_kind_is_reported(client_with_key, customer):
    events = [
        event_payload(customer, output_tokens=-1) if i % 2 else event_payload(customer)
        for i in range(6)
    ]
    response = post(client_with_key, {"events": events})
    assert_refused(response, 400)
    assert [e["index"] for e in response.json()["errors"]] == [1, 3, 5]


def test_validation_errors_of_many_fields_in_one_item_are_all_reported(client_with_key, customer):
    body = event_payload(
        customer, timestamp="2020-01-01T00:00:00", cost="-1", properties={"x": "y" * 9000}
    )
    response = post(client_with_key, body)
    assert_refused(response, 400)
    assert {e["field"] for e in response.json()["errors"]} == {"timestamp", "cost", "properties"}
