"""Hostile input gets a 4xx that names the field, never a 500, and nothing is stored.
Each case here answered 500 once."""

import json

import pytest

from metering.models import Customer, UsageEvent
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload
from tests.outcomes.factories import outcome_payload

pytestmark = pytest.mark.django_db


def post_raw(client, path: str, body: bytes):
    return client.generic("POST", path, body, content_type="application/json")


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.fixture
def acme(db):
    return customer_create(external_id="acme")


@pytest.mark.parametrize("path", ["/v1/events", "/v1/outcomes"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "x\xff\xfe", "customer": "acme"}',  # not UTF-8
        b'{"id": "x\\ud800", "customer": "acme"}',  # a lone surrogate, escaped
        b'{"id": "x", "customer": "acme", "properties": {"\\udc00": 1}}',
    ],
)
def test_text_that_is_not_unicode_is_refused(client_with_key, acme, path, body):
    response = post_raw(client_with_key, path, body)

    assert response.status_code == 400, response.content
    assert response.json()["errors"]
    assert not UsageEvent.objects.exists() and not Outcome.objects.exists()


def test_a_lone_surrogate_as_a_metadata_key_is_refused(client_with_key):
    body = b'{"name": "Acme", "metadata": {"\\ud800": "x"}}'

    response = client_with_key.generic(
        "PUT", "/v1/customers/acme", body, content_type="application/json"
    )

    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["metadata"]
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    ("path", "method", "template"),
    [
        ("/v1/events", "POST", '{"id": "x", "customer": "acme", "properties": {"a": %s}}'),
        ("/v1/outcomes", "POST", '{"id": "x", "customer": "acme", "type": "t", '
                                 '"properties": {"a": %s}}'),
        ("/v1/customers/acme", "PUT", '{"metadata": {"a": %s}}'),
    ],
)  # fmt: skip
def test_json_nested_thousands_deep_is_refused(client_with_key, acme, path, method, template):
    body = (template % deep(5000)).encode()

    response = client_with_key.generic(method, path, body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert response.json()["errors"]
    assert not UsageEvent.objects.exists() and not Outcome.objects.exists()
    assert Customer.objects.get().metadata == {}


@pytest.mark.parametrize("seats", [2**31, 2**63, int("9" * 400)])
def test_a_seat_count_too_large_is_refused(client_with_key, seats):
    plan_load("seats", premium_seat_fee="10")

    response = client_with_key.generic(
        "PUT",
        "/v1/customers/acme",
        json.dumps({"plan": "seats", "premium_seats": seats}),
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["premium_seats"]
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/plans?offset={2**63}",
        f"/v1/customers/acme/invoices?offset={2**63}",
        f"/v1/plans?limit=5&offset={'9' * 400}",
        f"/v1/analytics/savings?max_input_tokens={2**63}&substitute=openai:gpt-4o=openai:gpt-4o-mini",
    ],
)
def test_numbers_too_large_for_the_database_are_refused(client_with_key, acme, path):
    response = client_with_key.get(path)

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] in {"offset", "max_input_tokens"}


@pytest.mark.parametrize("offset", ["+16:00", "-23:59", "+99:00"])
def test_a_timestamp_offset_postgresql_cannot_store_is_refused(client_with_key, acme, offset):
    for path, payload in (
        ("/v1/outcomes", outcome_payload("acme")),
        ("/v1/events", event_payload("acme")),
    ):
        payload["timestamp"] = f"2026-11-30T10:00:00{offset}"

        response = client_with_key.post(path, payload, format="json")

        assert response.status_code == 400, response.content
        assert [e["field"] for e in response.json()["errors"]] == ["timestamp"]
    assert not UsageEvent.objects.exists() and not Outcome.objects.exists()
