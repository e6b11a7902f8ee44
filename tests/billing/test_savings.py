"""GET /v1/analytics/savings: the three cost levers, each against a hand computation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.metering.factories import customer_create, event_payload, override_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(client_with_key):
    customer_create(external_id="acme")
    customer_create(external_id="other")
    # Earlier this month (the reports' default window), whatever the day: on the 1st,
    # yesterday is last month.
    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    at = (month_start + (now - month_start) / 2).isoformat()
    events = [
        # the same prompt three times (costs 1, 2, 3): the repeats spent 2 + 3 = 5
        *[
            event_payload("acme", model="m", prompt_hash="h1", cost=str(cost), timestamp=at)
            for cost in (1, 2, 3)
        ],
        event_payload("acme", model="m", prompt_hash="h2", cost="4", timestamp=at),
        # two application-cache hits on gpt-4o-mini, free: each would cost $0.00027
        *[
            event_payload(
                "acme",
                model="gpt-4o-mini",
                input_tokens=1000,
                output_tokens=200,
                cache_hit=True,
                cost="0",
                timestamp=at,
            )
            for _ in range(2)
        ],
        # the gpt-4o call: $7.25, of which 200k cache reads saved 200k x $1.25/M
        event_payload(
            "acme",
            model="gpt-4o",
            input_tokens=1_000_000,
            cache_read_tokens=200_000,
            output_tokens=500_000,
            timestamp=at,
        ),
        # another customer's call, outside a per-customer view
        event_payload("other", model="gpt-4o", input_tokens=10, output_tokens=10, timestamp=at),
    ]
    response = client_with_key.post("/v1/events", {"events": events}, format="json")
    assert response.json()["accepted"] == len(events)


def savings(client, **params):
    response = client.get("/v1/analytics/savings", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_caching_levers(client_with_key, calls):
    caching = savings(client_with_key, customer="acme")["caching"]
    assert (caching["calls_with_prompt_hash"], caching["repeated_calls"]) == (4, 2)
    assert Decimal(caching["repeated_share"]) == Decimal("0.5")
    assert Decimal(caching["repeated_cost"]) == Decimal(5)
    assert caching["cache_hits"] == 2
    assert Decimal(caching["cache_hit_saving"]) == Decimal("0.00054")
    assert caching["cache_read_tokens"] == 200_000
    assert Decimal(caching["cache_read_saving"]) == Decimal("0.25")


def test_routing_what_if(client_with_key, calls):
    [routing] = savings(
        client_with_key, customer="acme", substitute="openai:gpt-4o=openai:gpt-4o-mini"
    )["routing"]
    # gpt-4o-mini: 800k x $0.15 + 200k x $0.075 + 500k x $0.60, per million = $0.435
    assert (routing["calls"], Decimal(routing["cost_before"])) == (1, Decimal("7.25"))
    assert Decimal(routing["cost_after"]) == Decimal("0.435")
    assert Decimal(routing["saving"]) == Decimal("6.815")


def test_routing_only_small_calls(client_with_key, calls):
    [routing] = savings(
        client_with_key, substitute="openai:gpt-4o=openai:gpt-4o-mini", max_input_tokens=100
    )["routing"]
    assert routing["calls"] == 1  # other's 10-token call, not acme's 1M


def test_distillation_what_if_against_a_self_hosted_price(client_with_key, calls):
    override_create(
        effective_from=timezone.now() - timedelta(days=30),
        input_per_mtok="0.10",
        output_per_mtok="0.20",
    )
    [distill] = savings(
        client_with_key,
        customer="acme",
        distill="openai:gpt-4o=self-hosted:llama-3-8b-distilled",
    )["distillation"]
    # 1M input x $0.10 (cache reads at the input price) + 500k x $0.20 = $0.20
    assert Decimal(distill["cost_after"]) == Decimal("0.2")
    assert Decimal(distill["saving"]) == Decimal("7.05")


def test_a_target_without_a_price_says_so(client_with_key, calls):
    [routing] = savings(client_with_key, substitute="openai:gpt-4o=nobody:unknown")["routing"]
    assert routing["cost_after"] is None and routing["saving"] is None


@pytest.mark.parametrize("value", ["gpt-4o=gpt-4o-mini", "openai:gpt-4o", "openai:=x:y"])
def test_a_malformed_substitution_is_400(client_with_key, value):
    response = client_with_key.get("/v1/analytics/savings", {"substitute": value})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "substitute"
