"""POST /v1/events: exactly once, duplicates and conflicts, all or nothing."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from metering.models import CostSource, EventKey, UsageEvent
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["values", "copy"])
def ingest_path(request, settings):
    """Every test here runs both ways in: one statement with the events as parameters
    (small batches) and binary COPY into the staging table (large batches)."""
    settings.METERING_COPY_THRESHOLD = 1000 if request.param == "values" else 0
    return request.param


def post_events(client, body, **extra):
    return client.post("/v1/events", body, format="json", **extra)


def test_single_event_is_stored_with_its_fields(client_with_key):
    customer = customer_create(external_id="acme")
    body = event_payload(
        customer,
        id="call-1",
        timestamp=(timezone.now() - timedelta(days=1)).isoformat(),
        cache_read_tokens=100,
        cache_write_tokens=50,
        outcome="ticket-9",
        user="u-1",
        feature="reply",
        tier="premium",
        prompt_hash="abc",
        cache_hit=True,
        properties={"channel": "email"},
    )

    response = post_events(client_with_key, body)

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "conflicts": []}
    event = UsageEvent.objects.get(event_id="call-1")
    assert event.customer == customer
    assert (event.input_tokens, event.output_tokens) == (1000, 200)
    assert (event.cache_read_tokens, event.cache_write_tokens) == (100, 50)
    assert (event.outcome_ref, event.end_user, event.feature, event.tier) == (
        "ticket-9",
        "u-1",
        "reply",
        "premium",
    )
    assert event.prompt_hash == "abc" and event.cache_hit is True
    assert event.properties == {"channel": "email"}
    assert event.cost_source == CostSource.CATALOG


def test_batch_is_stored_and_counted(client_with_key):
    customer = customer_create()
    events = [event_payload(customer) for _ in range(25)]

    response = post_events(client_with_key, {"events": events})

    assert response.json() == {"accepted": 25, "duplicates": 0, "conflicts": []}
    assert UsageEvent.objects.count() == 25
    assert EventKey.objects.count() == 25


def test_same_id_and_payload_again_is_a_duplicate_and_changes_nothing(client_with_key):
    body = event_payload(customer_create())
    post_events(client_with_key, body)
    stored = UsageEvent.objects.get()

    response = post_events(client_with_key, body)

    assert response.json() == {"accepted": 0, "duplicates": 1, "conflicts": []}
    assert list(UsageEvent.objects.all()) == [stored]
    assert UsageEvent.objects.get().received_at == stored.received_at


def test_retry_without_timestamp_is_a_duplicate_not_a_conflict(client_with_key):
    """The payload is what the client sent, before the server's default timestamp."""
    body = event_payload(customer_create())
    post_events(client_with_key, body)

    response = post_events(client_with_key, body)

    assert response.json()["duplicates"] == 1
    assert UsageEvent.objects.count() == 1


def test_key_order_does_not_make_a_conflict(client_with_key):
    body = event_payload(customer_create(), properties={"a": 1, "b": 2})
    post_events(client_with_key, body)
    reordered = dict(reversed(list(body.items())))
    reordered["properties"] = {"b": 2, "a": 1}

    assert post_events(client_with_key, reordered).json()["duplicates"] == 1


def test_same_id_with_another_payload_is_a_conflict_and_keeps_the_original(client_with_key):
    body = event_payload(customer_create(), output_tokens=200)
    post_events(client_with_key, body)

    response = post_events(client_with_key, {**body, "output_tokens": 999})

    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "duplicates": 0, "conflicts": [body["id"]]}
    assert UsageEvent.objects.get().output_tokens == 200


def test_same_id_for_another_customer_is_a_conflict_not_a_second_event(client_with_key):
    body = event_payload(customer_create(external_id="acme"), id="shared-id")
    post_events(client_with_key, body)
    customer_create(external_id="globex")

    response = post_events(client_with_key, {**body, "customer": "globex"})

    assert response.json()["conflicts"] == ["shared-id"]
    assert UsageEvent.objects.get().customer.external_id == "acme"


def test_duplicates_and_conflicts_inside_one_batch(client_with_key):
    customer = customer_create()
    first = event_payload(customer, id="dup")
    other = event_payload(customer, id="new")

    response = post_events(
        client_with_key, {"events": [first, first, {**first, "output_tokens": 1}, other]}
    )

    assert response.json() == {"accepted": 2, "duplicates": 1, "conflicts": ["dup"]}
    assert UsageEvent.objects.get(event_id="dup").output_tokens == first["output_tokens"]


def test_mixed_batch_of_new_duplicate_and_conflicting_events(client_with_key):
    customer = customer_create()
    old = event_payload(customer, id="old")
    changed = event_payload(customer, id="changed")
    post_events(client_with_key, {"events": [old, changed]})

    response = post_events(
        client_with_key,
        {"events": [old, {**changed, "feature": "other"}, event_payload(customer, id="fresh")]},
    )

    assert response.json() == {"accepted": 1, "duplicates": 1, "conflicts": ["changed"]}
    assert UsageEvent.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_identical_posts_store_exactly_one_event(live_server, api_key):
    body = event_payload(customer_create(), id="race")
    headers = {"Authorization": f"Api-Key {api_key}"}

    def post(_: int) -> requests.Response:
        return requests.post(f"{live_server.url}/v1/events", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(post, range(50)))

    assert [r.status_code for r in responses] == [200] * 50
    answers = [r.json() for r in responses]
    assert sum(a["accepted"] for a in answers) == 1
    assert sum(a["duplicates"] for a in answers) == 49
    assert all(a["conflicts"] == [] for a in answers)
    assert UsageEvent.objects.filter(event_id="race").count() == 1
    assert EventKey.objects.filter(key="race").count() == 1
