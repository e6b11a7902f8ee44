"""GET /v1/customers/{id}/usage: the invoice preview and margin, end to end."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.billing.factories import plan_load
from tests.metering.factories import event_payload

pytestmark = pytest.mark.django_db


def put_customer(client, external_id, **fields):
    response = client.put(f"/v1/customers/{external_id}", fields, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def post_outcomes(client, *outcomes):
    response = client.post("/v1/outcomes", {"outcomes": list(outcomes)}, format="json")
    assert response.status_code == 200, response.content


def post_events(client, *events):
    response = client.post("/v1/events", {"events": list(events)}, format="json")
    assert response.status_code == 200, response.content


def usage(client, external_id):
    response = client.get(f"/v1/customers/{external_id}/usage")
    assert response.status_code == 200, response.content
    return response.json()


def test_pay_per_resolution_bills_successes_only_and_shows_the_margin(client_with_key):
    plan_load("support-ai", outcomes=[{"type": "resolution", "unit_price": "0.99", "included": 2}])
    put_customer(client_with_key, "acme", plan="support-ai")
    post_outcomes(
        client_with_key,
        *[
            {"id": f"ok-{i}", "customer": "acme", "type": "resolution", "status": "succeeded"}
            for i in range(5)
        ],
        *[
            {"id": f"bad-{i}", "customer": "acme", "type": "resolution", "status": "failed"}
            for i in range(2)
        ],
    )
    # Every attempt costs inference: 7 outcomes x 2 calls x $0.05 = $0.70
    post_events(
        client_with_key,
        *[
            event_payload("acme", outcome=o, cost="0.05")
            for o in [f"ok-{i}" for i in range(5)] + ["bad-0", "bad-1"]
            for _ in range(2)
        ],
    )

    body = usage(client_with_key, "acme")

    preview = body["invoice_preview"]
    assert [(line["kind"], line["quantity"], line["amount"]) for line in preview["lines"]] == [
        ("included", "2", 0),
        ("outcome", "3", 297),
    ]
    assert preview["total"] == 297 and preview["currency"] == "USD"
    assert body["margin"] == {
        "currency": "USD",
        "revenue": "2.97",
        "inference_cost": "0.7",
        "cost_status": "complete",
        "comparable": True,
        "margin": "2.27",
        "margin_percent": "76.43",
        "unpriced_calls": 0,
    }
    [resolution] = body["outcomes"]
    assert (resolution["succeeded"], resolution["failed"], resolution["calls"]) == (5, 2, 14)
    # The real price of a success carries the failures: $0.70 / 5 = $0.14, not $0.10.
    assert Decimal(resolution["cost_per_success"]) == Decimal("0.14")


def test_reversed_outcomes_are_not_billed(client_with_key):
    plan_load("support-ai", outcomes=[{"type": "resolution", "unit_price": "1"}])
    put_customer(client_with_key, "acme", plan="support-ai")
    post_outcomes(
        client_with_key,
        *[
            {"id": f"o-{i}", "customer": "acme", "type": "resolution", "status": "succeeded"}
            for i in range(3)
        ],
    )

    assert client_with_key.post("/v1/outcomes/o-0/reverse").status_code == 200

    assert usage(client_with_key, "acme")["invoice_preview"]["total"] == 200


def test_premium_active_seats_and_an_included_feature_at_cost(client_with_key):
    plan_load(
        "premium",
        base_fee="29",
        premium_seat_fee="10",
        seat_mode="active",
        token_pass_through=[{"feature": "seo", "markup": "0"}],
    )
    put_customer(client_with_key, "acme", plan="premium")
    post_events(
        client_with_key,
        *[event_payload("acme", user=f"u-{i % 3}", tier="premium", cost="0.5") for i in range(9)],
        event_payload("acme", user="free-user", cost="0.5"),
        event_payload("acme", feature="seo", cost="1.25"),
    )

    body = usage(client_with_key, "acme")

    assert body["premium_active_seats"] == 3
    assert [(line["kind"], line["amount"]) for line in body["invoice_preview"]["lines"]] == [
        ("base_fee", 2900),
        ("seats", 3000),
        ("pass_through", 125),
    ]


def test_fixed_seats_come_from_the_customer(client_with_key):
    plan_load("premium", premium_seat_fee="10")
    put_customer(client_with_key, "acme", plan="premium", premium_seats=7)
    lines = usage(client_with_key, "acme")["invoice_preview"]["lines"]
    assert [(line["kind"], line["quantity"], line["amount"]) for line in lines] == [
        ("seats", "7", 7000)
    ]


def test_a_share_of_the_money_saved_with_floor_and_cap(client_with_key):
    plan_load(
        "finance",
        currency="EUR",
        outcomes=[{"type": "invoice_negotiated", "percentage": "5", "floor": "10", "cap": "50"}],
    )
    put_customer(client_with_key, "acme", plan="finance", currency="EUR")
    post_outcomes(
        client_with_key,
        *[
            {
                "id": f"deal-{value}",
                "customer": "acme",
                "type": "invoice_negotiated",
                "status": "succeeded",
                "value": value,
                "currency": "EUR",
            }
            for value in ("100", "1000", "10000")
        ],
    )

    body = usage(client_with_key, "acme")

    # 5 % of 100 = 5 -> floor 10; of 1,000 = 50; of 10,000 = 500 -> cap 50: 110 EUR
    assert body["invoice_preview"]["total"] == 11000
    # Revenue is EUR, cost is USD: no margin until FX rates exist, rather than a wrong one.
    assert body["margin"]["comparable"] is False
    assert body["margin"]["margin"] is None


def test_without_a_plan_there_is_no_preview(client_with_key):
    put_customer(client_with_key, "acme")
    body = usage(client_with_key, "acme")
    assert body["invoice_preview"] is None and body["margin"] is None


def test_customer_plan_must_exist(client_with_key):
    response = client_with_key.put("/v1/customers/acme", {"plan": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": "plan",
        "code": "unknown_plan",
        "message": "No plan `nope`.",
    }


def test_seats_without_a_plan_are_refused_and_nothing_is_written(client_with_key):
    response = client_with_key.put("/v1/customers/acme", {"premium_seats": 3}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "plan_required"
    assert client_with_key.get("/v1/customers/acme").status_code == 404


def test_customer_shows_its_plan_and_seats(client_with_key):
    plan_load("premium", premium_seat_fee="10")
    body = put_customer(client_with_key, "acme", plan="premium", premium_seats=4)
    assert (body["plan"], body["premium_seats"]) == ("premium", 4)


def test_reversal_after_the_plans_window_is_409(client_with_key):
    plan_load(
        "support-ai", reversal_window_days=3, outcomes=[{"type": "resolution", "unit_price": "1"}]
    )
    put_customer(client_with_key, "acme", plan="support-ai")
    old = (timezone.now() - timedelta(days=4)).isoformat()
    post_outcomes(
        client_with_key,
        {
            "id": "old",
            "customer": "acme",
            "type": "resolution",
            "status": "succeeded",
            "timestamp": old,
        },
    )

    response = client_with_key.post("/v1/outcomes/old/reverse")

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "reversal_window_passed"


def test_reversing_a_pending_outcome_is_409(client_with_key):
    put_customer(client_with_key, "acme")
    post_outcomes(client_with_key, {"id": "p", "customer": "acme", "type": "resolution"})
    response = client_with_key.post("/v1/outcomes/p/reverse")
    assert response.status_code == 409
    assert "is pending" in response.json()["errors"][0]["message"]


def test_reversing_an_unknown_outcome_is_404(client_with_key):
    assert client_with_key.post("/v1/outcomes/nope/reverse").status_code == 404


def test_an_outcome_reports_its_calls_and_cost(client_with_key):
    put_customer(client_with_key, "acme")
    # The calls arrive before the outcome: attribution is by id, whenever each arrives.
    post_events(
        client_with_key,
        event_payload("acme", outcome="o-1", cost="0.25"),
        event_payload("acme", outcome="o-1", provider="x", model="unknown"),
    )
    post_outcomes(client_with_key, {"id": "o-1", "customer": "acme", "type": "resolution"})

    body = client_with_key.get("/v1/outcomes/o-1").json()

    assert (body["calls"], body["cost"], body["unpriced_calls"]) == (2, "0.250000000000", 1)


def test_a_margin_over_unpriced_calls_only_is_unknown_not_zero(client_with_key):
    plan_load("basic", base_fee="10")
    put_customer(client_with_key, "acme", plan="basic")
    post_events(client_with_key, event_payload("acme", provider="acme-ai", model="secret"))

    margin = usage(client_with_key, "acme")["margin"]

    assert (margin["inference_cost"], margin["cost_status"], margin["margin"]) == (
        None,
        "unknown",
        None,
    )
    assert margin["unpriced_calls"] == 1
