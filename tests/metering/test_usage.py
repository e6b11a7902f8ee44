"""GET /v1/customers/{id}/usage: SQL aggregates equal to a hand computation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


def test_usage_aggregates_equal_a_hand_computation(client_with_key):
    acme = customer_create(external_id="acme")
    other = customer_create(external_id="other")
    now = timezone.now()
    start = (now - timedelta(days=3)).replace(microsecond=0)
    inside = (now - timedelta(days=1)).isoformat()
    events = [
        event_payload(
            acme,
            model="gpt-4o",
            input_tokens=1000,
            output_tokens=100,
            cost="0.5",
            feature="reply",
            timestamp=inside,
        ),
        event_payload(
            acme,
            model="gpt-4o",
            input_tokens=3000,
            output_tokens=300,
            cache_read_tokens=1000,
            cost="1.25",
            feature="reply",
            timestamp=inside,
        ),
        event_payload(
            acme,
            model="gpt-4o-mini",
            input_tokens=500,
            output_tokens=50,
            cache_write_tokens=100,
            cost="0.01",
            feature="summary",
            timestamp=inside,
        ),
        event_payload(
            acme,
            provider="self-hosted",
            model="llama",
            input_tokens=7,
            output_tokens=3,
            timestamp=inside,
        ),  # unpriced, no feature
        # Outside the window, or another customer's: not counted.
        event_payload(acme, cost="9", timestamp=(now - timedelta(days=4)).isoformat()),
        event_payload(other, cost="9", timestamp=inside),
    ]
    assert client_with_key.post("/v1/events", {"events": events}, format="json").status_code == 200

    response = client_with_key.get(
        "/v1/customers/acme/usage",
        {"from": start.isoformat(), "to": (now + timedelta(minutes=10)).isoformat()},
    )

    assert response.status_code == 200, response.content
    usage = response.json()
    assert usage["totals"] == {
        "calls": 4,
        "input_tokens": 4507,
        "output_tokens": 453,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 100,
        "cost": "1.760000000000",
        "unpriced_calls": 1,
    }
    by_model = {(m["provider"], m["model"]): m for m in usage["by_model"]}
    assert Decimal(by_model[("openai", "gpt-4o")]["cost"]) == Decimal("1.75")
    assert by_model[("openai", "gpt-4o")]["calls"] == 2
    assert by_model[("self-hosted", "llama")]["cost"] is None
    assert by_model[("self-hosted", "llama")]["unpriced_calls"] == 1
    by_feature = {f["feature"]: f for f in usage["by_feature"]}
    assert set(by_feature) == {"reply", "summary", None}
    assert by_feature["reply"]["input_tokens"] == 4000
    assert Decimal(by_feature["summary"]["cost"]) == Decimal("0.01")
    assert by_feature[None]["unpriced_calls"] == 1


def test_usage_defaults_to_the_current_calendar_month(client_with_key):
    customer_create(external_id="acme")
    usage = client_with_key.get("/v1/customers/acme/usage").json()
    now = timezone.now()
    assert usage["start"].startswith(f"{now:%Y-%m}-01T00:00:00")
    assert usage["totals"]["calls"] == 0
    assert usage["totals"]["cost"] == "0.000000000000"


def test_usage_of_unknown_customer_is_404(client_with_key):
    response = client_with_key.get("/v1/customers/nobody/usage")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_usage_window_must_be_ordered(client_with_key):
    customer_create(external_id="acme")
    response = client_with_key.get(
        "/v1/customers/acme/usage", {"from": "2026-11-10T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "to"


def test_usage_window_must_be_dates(client_with_key):
    customer_create(external_id="acme")
    response = client_with_key.get("/v1/customers/acme/usage", {"from": "last tuesday"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "from"
