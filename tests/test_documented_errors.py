"""Every error the API documents can happen, and looks as documented.

The OpenAPI schema (`/v1/schema`) lists, per operation, the statuses it may answer. Here
each documented 4xx and 5xx has a request that provokes it, checked both ways: a status
documented without such a request fails the first test (a promise nobody checks), and a
request for a status no longer documented fails it too (a check of nothing). The
API reference's list of ingest error codes (docs/api.md) is held to the same rule.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from metering.models import Customer
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.faults import broker_down
from tests.support.openapi import openapi_schema

pytestmark = pytest.mark.django_db

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


@dataclass
class Api:
    """What a recipe needs: a client with a key, one without, and names that exist."""

    keyed: APIClient
    anonymous: APIClient
    revoked_key: str
    expired_key: str
    settings: Any

    def over_rate(self, call: Callable[[APIClient], Any]) -> Any:
        """The second call in a window of one request per hour per key."""
        self.settings.API_KEY_RATE_LIMIT = "1/h"
        call(self.keyed)
        return call(self.keyed)


def json_post(path: str, body: Any) -> Callable[[APIClient], Any]:
    return lambda client: client.post(path, body, format="json")


def event_post(body: Any) -> Callable[[Api], Any]:
    return lambda api: api.keyed.post("/v1/events", body, format="json")


def get(path: str) -> Callable[[APIClient], Any]:
    return lambda client: client.get(path)


def too_large(api: Api, path: str) -> Any:
    api.settings.API_MAX_BODY_BYTES = 100
    return api.keyed.post(path, {"id": "x" * 200}, format="json")


def not_json(path: str, method: str = "post") -> Callable[[Api], Any]:
    return lambda api: getattr(api.keyed, method)(path, "id=1", content_type="text/plain")


EVENT = {"id": "call-1", "customer": "acme", "model": "gpt-4o", "input_tokens": 1}
OUTCOME = {"id": "o-1", "customer": "acme", "type": "resolution"}
CUSTOMER = {"name": "Acme"}
PLAN = {"name": "Basic", "currency": "USD", "base_fee": "10"}
FX_RATE = {"currency": "EUR", "effective_from": "2026-10-01T00:00:00Z", "usd_per_unit": "1.1"}
OVERRIDE = {
    "provider": "self-hosted",
    "model": "llama-3-8b",
    "effective_from": "2026-10-01T00:00:00Z",
    "input_per_mtok": "0.1",
    "output_per_mtok": "0.2",
}

CUSTOMER_PATH = "/v1/customers/{external_id}"
ACME = "/v1/customers/acme"
CREDITS = "/v1/customers/{external_id}/credits"
RESERVATION = "/v1/reservations/{reservation_id}"
DISPUTES = "/v1/outcomes/{external_id}/disputes"
PORTAL_LINKS = "/v1/customers/{external_id}/portal-links"
CREDIT_NOTES = "/v1/invoices/{invoice_id}/credit-notes"
CREDIT_NOTE = {"id": "cn-1", "lines": [{"invoice_line": 1, "amount": "1.00"}]}
SPEND = {"amount": "1"}
SETTLE = {"amount": "1"}
LIMIT = {"mode": "hard"}
TOP_UP = {"id": "buy-1", "amount": "5"}
AUTO = {"threshold": "10", "amount": "50"}
ACME_GRANTS = "/v1/customers/acme/credits/grants"
GRANT = {"id": "welcome", "amount": "5"}

# (method, path as in the schema, status) -> the request that provokes it.
RECIPES: dict[tuple[str, str, int], Callable[[Api], Any]] = {
    ("GET", "/v1/analytics/margins", 400): lambda a: a.keyed.get("/v1/analytics/margins?from=x"),
    ("GET", "/v1/analytics/margins", 401): lambda a: a.anonymous.get("/v1/analytics/margins"),
    ("GET", "/v1/analytics/margins", 404): lambda a: a.keyed.get(
        "/v1/analytics/margins?customer=nobody"
    ),
    ("GET", "/v1/analytics/margins", 429): lambda a: a.over_rate(get("/v1/analytics/margins")),
    ("GET", "/v1/analytics/premium", 400): lambda a: a.keyed.get("/v1/analytics/premium?to=x"),
    ("GET", "/v1/analytics/premium", 401): lambda a: a.anonymous.get("/v1/analytics/premium"),
    ("GET", "/v1/analytics/premium", 429): lambda a: a.over_rate(get("/v1/analytics/premium")),
    ("GET", "/v1/analytics/savings", 400): lambda a: a.keyed.get("/v1/analytics/savings?from=x"),
    ("GET", "/v1/analytics/savings", 401): lambda a: a.anonymous.get("/v1/analytics/savings"),
    ("GET", "/v1/analytics/savings", 404): lambda a: a.keyed.get(
        "/v1/analytics/savings?customer=nobody"
    ),
    ("GET", "/v1/analytics/savings", 429): lambda a: a.over_rate(get("/v1/analytics/savings")),
    ("GET", "/v1/customers/{external_id}", 401): lambda a: a.anonymous.get("/v1/customers/acme"),
    ("GET", "/v1/customers/{external_id}", 404): lambda a: a.keyed.get("/v1/customers/nobody"),
    ("PUT", "/v1/customers/{external_id}", 400): lambda a: a.keyed.put(
        "/v1/customers/acme", {"plan_of_mine": "x"}, format="json"
    ),
    ("PUT", "/v1/customers/{external_id}", 401): lambda a: a.anonymous.put(
        "/v1/customers/acme", CUSTOMER, format="json"
    ),
    ("PUT", "/v1/customers/{external_id}", 415): not_json("/v1/customers/acme", "put"),
    ("PUT", "/v1/customers/{external_id}", 429): lambda a: a.over_rate(
        lambda c: c.put("/v1/customers/acme", CUSTOMER, format="json")
    ),
    ("GET", "/v1/customers/{external_id}/invoices", 400): lambda a: a.keyed.get(
        "/v1/customers/acme/invoices?limit=100000"
    ),
    ("GET", "/v1/customers/{external_id}/invoices", 401): lambda a: a.anonymous.get(
        "/v1/customers/acme/invoices"
    ),
    ("GET", "/v1/customers/{external_id}/invoices", 404): lambda a: a.keyed.get(
        "/v1/customers/nobody/invoices"
    ),
    ("GET", "/v1/customers/{external_id}/invoices", 429): lambda a: a.over_rate(
        get("/v1/customers/acme/invoices")
    ),
    ("GET", "/v1/customers/{external_id}/usage", 400): lambda a: a.keyed.get(
        "/v1/customers/acme/usage?from=x"
    ),
    ("GET", "/v1/customers/{external_id}/usage", 401): lambda a: a.anonymous.get(
        "/v1/customers/acme/usage"
    ),
    ("GET", "/v1/customers/{external_id}/usage", 404): lambda a: a.keyed.get(
        "/v1/customers/nobody/usage"
    ),
    ("GET", "/v1/customers/{external_id}/usage", 429): lambda a: a.over_rate(
        get("/v1/customers/acme/usage")
    ),
    ("PUT", "/v1/customers/{external_id}", 409): lambda a: moved_after_an_invoice(a),
    ("GET", CREDITS, 401): lambda a: a.anonymous.get("/v1/customers/acme/credits"),
    ("GET", CREDITS, 404): lambda a: a.keyed.get("/v1/customers/nobody/credits"),
    ("GET", CREDITS, 429): lambda a: a.over_rate(get("/v1/customers/acme/credits")),
    ("GET", f"{CREDITS}/grants", 400): lambda a: a.keyed.get(f"{ACME_GRANTS}?limit=0"),
    ("GET", f"{CREDITS}/grants", 401): lambda a: a.anonymous.get(ACME_GRANTS),
    ("GET", f"{CREDITS}/grants", 404): lambda a: a.keyed.get("/v1/customers/nobody/credits/grants"),
    ("GET", f"{CREDITS}/grants", 429): lambda a: a.over_rate(get(ACME_GRANTS)),
    ("POST", f"{CREDITS}/grants", 400): lambda a: a.keyed.post(
        ACME_GRANTS, {**GRANT, "amount": "-1"}, format="json"
    ),
    ("POST", f"{CREDITS}/grants", 401): lambda a: a.anonymous.post(
        ACME_GRANTS, GRANT, format="json"
    ),
    ("POST", f"{CREDITS}/grants", 404): lambda a: a.keyed.post(
        "/v1/customers/nobody/credits/grants", GRANT, format="json"
    ),
    ("POST", f"{CREDITS}/grants", 409): lambda a: twice(
        a, ACME_GRANTS, GRANT, {**GRANT, "amount": "6"}
    ),
    ("POST", f"{CREDITS}/grants", 415): not_json(ACME_GRANTS),
    ("POST", f"{CREDITS}/grants", 429): lambda a: a.over_rate(json_post(ACME_GRANTS, GRANT)),
    ("POST", f"{CREDITS}/grants/{{grant_id}}/void", 400): lambda a: a.keyed.post(
        f"{ACME_GRANTS}/welcome/void", {"why": "x"}, format="json"
    ),
    ("POST", f"{CREDITS}/grants/{{grant_id}}/void", 401): lambda a: a.anonymous.post(
        f"{ACME_GRANTS}/welcome/void", {}, format="json"
    ),
    ("POST", f"{CREDITS}/grants/{{grant_id}}/void", 404): lambda a: a.keyed.post(
        f"{ACME_GRANTS}/nothing/void", {}, format="json"
    ),
    ("POST", f"{CREDITS}/grants/{{grant_id}}/void", 415): not_json(f"{ACME_GRANTS}/welcome/void"),
    ("POST", f"{CREDITS}/grants/{{grant_id}}/void", 429): lambda a: a.over_rate(
        json_post(f"{ACME_GRANTS}/welcome/void", {})
    ),
    ("POST", f"{CUSTOMER_PATH}/authorize", 400): lambda a: a.keyed.post(
        f"{ACME}/authorize", {"amount": "1", "ttl_seconds": 0}, format="json"
    ),
    ("POST", f"{CUSTOMER_PATH}/authorize", 401): lambda a: a.anonymous.post(
        f"{ACME}/authorize", SPEND, format="json"
    ),
    ("POST", f"{CUSTOMER_PATH}/authorize", 404): lambda a: a.keyed.post(
        "/v1/customers/nobody/authorize", SPEND, format="json"
    ),
    ("POST", f"{CUSTOMER_PATH}/authorize", 409): lambda a: a.keyed.post(
        f"{without_a_plan()}/authorize", SPEND, format="json"
    ),
    ("POST", f"{CUSTOMER_PATH}/authorize", 415): not_json(f"{ACME}/authorize"),
    ("POST", f"{CUSTOMER_PATH}/authorize", 429): lambda a: a.over_rate(
        json_post(f"{ACME}/authorize", SPEND)
    ),
    ("GET", f"{CUSTOMER_PATH}/available", 400): lambda a: a.keyed.get(f"{ACME}/available?user=%00"),
    ("GET", f"{CUSTOMER_PATH}/available", 401): lambda a: a.anonymous.get(f"{ACME}/available"),
    ("GET", f"{CUSTOMER_PATH}/available", 404): lambda a: a.keyed.get(
        "/v1/customers/nobody/available"
    ),
    ("GET", f"{CUSTOMER_PATH}/available", 409): lambda a: a.keyed.get(
        f"{without_a_plan()}/available"
    ),
    ("GET", f"{CUSTOMER_PATH}/available", 429): lambda a: a.over_rate(get(f"{ACME}/available")),
    ("PUT", f"{CUSTOMER_PATH}/spend-limit", 400): lambda a: a.keyed.put(
        f"{ACME}/spend-limit", {"mode": "strict"}, format="json"
    ),
    ("PUT", f"{CUSTOMER_PATH}/spend-limit", 401): lambda a: a.anonymous.put(
        f"{ACME}/spend-limit", LIMIT, format="json"
    ),
    ("PUT", f"{CUSTOMER_PATH}/spend-limit", 404): lambda a: a.keyed.put(
        "/v1/customers/nobody/spend-limit", LIMIT, format="json"
    ),
    ("PUT", f"{CUSTOMER_PATH}/spend-limit", 415): not_json(f"{ACME}/spend-limit", "put"),
    ("PUT", f"{CUSTOMER_PATH}/spend-limit", 429): lambda a: a.over_rate(
        lambda c: c.put(f"{ACME}/spend-limit", LIMIT, format="json")
    ),
    ("GET", RESERVATION, 401): lambda a: a.anonymous.get("/v1/reservations/res_x"),
    ("GET", RESERVATION, 404): lambda a: a.keyed.get("/v1/reservations/res_x"),
    ("POST", f"{RESERVATION}/release", 401): lambda a: a.anonymous.post(
        "/v1/reservations/res_x/release"
    ),
    ("POST", f"{RESERVATION}/release", 404): lambda a: a.keyed.post(
        "/v1/reservations/res_x/release"
    ),
    ("POST", f"{RESERVATION}/release", 409): lambda a: a.keyed.post(
        f"/v1/reservations/{settled_reservation(a)}/release"
    ),
    ("POST", f"{RESERVATION}/settle", 400): lambda a: a.keyed.post(
        f"/v1/reservations/{reservation(a)}/settle", {"amount": "x"}, format="json"
    ),
    ("POST", f"{RESERVATION}/settle", 401): lambda a: a.anonymous.post(
        "/v1/reservations/res_x/settle", SETTLE, format="json"
    ),
    ("POST", f"{RESERVATION}/settle", 404): lambda a: a.keyed.post(
        "/v1/reservations/res_x/settle", SETTLE, format="json"
    ),
    ("POST", f"{RESERVATION}/settle", 409): lambda a: a.keyed.post(
        f"/v1/reservations/{released_reservation(a)}/settle", SETTLE, format="json"
    ),
    ("POST", f"{RESERVATION}/settle", 415): lambda a: a.keyed.post(
        f"/v1/reservations/{reservation(a)}/settle", "amount=1", content_type="text/plain"
    ),
    ("POST", f"{RESERVATION}/settle", 429): lambda a: a.over_rate(
        json_post("/v1/reservations/res_x/settle", SETTLE)
    ),
    ("GET", "/v1/credits/liability", 401): lambda a: a.anonymous.get("/v1/credits/liability"),
    ("GET", "/v1/credits/liability", 429): lambda a: a.over_rate(get("/v1/credits/liability")),
    ("PUT", f"{CREDITS}/auto-top-up", 400): lambda a: a.keyed.put(
        f"{ACME}/credits/auto-top-up", {**AUTO, "threshold": "-1"}, format="json"
    ),
    ("PUT", f"{CREDITS}/auto-top-up", 401): lambda a: a.anonymous.put(
        f"{ACME}/credits/auto-top-up", AUTO, format="json"
    ),
    ("PUT", f"{CREDITS}/auto-top-up", 404): lambda a: a.keyed.put(
        "/v1/customers/nobody/credits/auto-top-up", AUTO, format="json"
    ),
    ("PUT", f"{CREDITS}/auto-top-up", 415): not_json(f"{ACME}/credits/auto-top-up", "put"),
    ("PUT", f"{CREDITS}/auto-top-up", 429): lambda a: a.over_rate(
        lambda c: c.put(f"{ACME}/credits/auto-top-up", AUTO, format="json")
    ),
    ("DELETE", f"{CREDITS}/auto-top-up", 401): lambda a: a.anonymous.delete(
        f"{ACME}/credits/auto-top-up"
    ),
    ("DELETE", f"{CREDITS}/auto-top-up", 404): lambda a: a.keyed.delete(
        "/v1/customers/nobody/credits/auto-top-up"
    ),
    ("DELETE", f"{CREDITS}/auto-top-up", 429): lambda a: a.over_rate(
        lambda c: c.delete(f"{ACME}/credits/auto-top-up")
    ),
    ("GET", f"{CREDITS}/top-ups", 400): lambda a: a.keyed.get(f"{ACME}/credits/top-ups?limit=x"),
    ("GET", f"{CREDITS}/top-ups", 401): lambda a: a.anonymous.get(f"{ACME}/credits/top-ups"),
    ("GET", f"{CREDITS}/top-ups", 404): lambda a: a.keyed.get(
        "/v1/customers/nobody/credits/top-ups"
    ),
    ("GET", f"{CREDITS}/top-ups", 429): lambda a: a.over_rate(get(f"{ACME}/credits/top-ups")),
    ("POST", f"{CREDITS}/top-ups", 400): lambda a: a.keyed.post(
        f"{ACME}/credits/top-ups", {"amount": "-1"}, format="json"
    ),
    ("POST", f"{CREDITS}/top-ups", 401): lambda a: a.anonymous.post(
        f"{ACME}/credits/top-ups", TOP_UP, format="json"
    ),
    ("POST", f"{CREDITS}/top-ups", 404): lambda a: a.keyed.post(
        "/v1/customers/nobody/credits/top-ups", TOP_UP, format="json"
    ),
    ("POST", f"{CREDITS}/top-ups", 409): lambda a: twice_accepted(
        a, f"{ACME}/credits/top-ups", TOP_UP, {**TOP_UP, "amount": "6"}
    ),
    ("POST", f"{CREDITS}/top-ups", 415): not_json(f"{ACME}/credits/top-ups"),
    ("POST", f"{CREDITS}/top-ups", 429): lambda a: a.over_rate(
        json_post(f"{ACME}/credits/top-ups", TOP_UP)
    ),
    ("GET", f"{CREDITS}/ledger", 400): lambda a: a.keyed.get(
        "/v1/customers/acme/credits/ledger?offset=x"
    ),
    ("GET", f"{CREDITS}/ledger", 401): lambda a: a.anonymous.get(
        "/v1/customers/acme/credits/ledger"
    ),
    ("GET", f"{CREDITS}/ledger", 404): lambda a: a.keyed.get("/v1/customers/nobody/credits/ledger"),
    ("GET", f"{CREDITS}/ledger", 429): lambda a: a.over_rate(
        get("/v1/customers/acme/credits/ledger")
    ),
    ("GET", "/v1/fx-rates", 400): lambda a: a.keyed.get("/v1/fx-rates?limit=0"),
    ("GET", "/v1/fx-rates", 401): lambda a: a.anonymous.get("/v1/fx-rates"),
    ("GET", "/v1/fx-rates", 429): lambda a: a.over_rate(get("/v1/fx-rates")),
    ("POST", "/v1/fx-rates", 400): lambda a: a.keyed.post(
        "/v1/fx-rates", {**FX_RATE, "currency": "USD"}, format="json"
    ),
    ("POST", "/v1/fx-rates", 401): lambda a: a.anonymous.post(
        "/v1/fx-rates", FX_RATE, format="json"
    ),
    ("POST", "/v1/fx-rates", 409): lambda a: twice(
        a, "/v1/fx-rates", FX_RATE, {**FX_RATE, "usd_per_unit": "1.2"}
    ),
    ("POST", "/v1/fx-rates", 415): not_json("/v1/fx-rates"),
    ("POST", "/v1/fx-rates", 429): lambda a: a.over_rate(json_post("/v1/fx-rates", FX_RATE)),
    ("GET", CREDIT_NOTES, 401): lambda a: a.anonymous.get("/v1/invoices/1/credit-notes"),
    ("GET", CREDIT_NOTES, 404): lambda a: a.keyed.get("/v1/invoices/999999/credit-notes"),
    ("GET", CREDIT_NOTES, 429): lambda a: a.over_rate(get("/v1/invoices/999999/credit-notes")),
    ("POST", CREDIT_NOTES, 400): lambda a: credit_note(a, {**CREDIT_NOTE, "lines": []}),
    ("POST", CREDIT_NOTES, 401): lambda a: a.anonymous.post(
        "/v1/invoices/1/credit-notes", CREDIT_NOTE, format="json"
    ),
    ("POST", CREDIT_NOTES, 404): lambda a: a.keyed.post(
        "/v1/invoices/999999/credit-notes", CREDIT_NOTE, format="json"
    ),
    # More than the line billed (its base fee: 10.00).
    ("POST", CREDIT_NOTES, 409): lambda a: credit_note(
        a, {**CREDIT_NOTE, "lines": [{"invoice_line": 1, "amount": "10.01"}]}
    ),
    ("POST", CREDIT_NOTES, 415): not_json("/v1/invoices/1/credit-notes"),
    ("POST", CREDIT_NOTES, 429): lambda a: a.over_rate(
        json_post("/v1/invoices/999999/credit-notes", CREDIT_NOTE)
    ),
    ("GET", "/v1/invoices/{invoice_id}", 401): lambda a: a.anonymous.get("/v1/invoices/1"),
    ("GET", "/v1/invoices/{invoice_id}", 404): lambda a: a.keyed.get("/v1/invoices/999999"),
    ("GET", "/v1/invoices/{invoice_id}/statement", 400): lambda a: a.keyed.get(
        "/v1/invoices/1/statement?limit=0"
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement", 429): lambda a: a.over_rate(
        get("/v1/invoices/999999/statement")
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement.pdf", 401): lambda a: a.anonymous.get(
        "/v1/invoices/1/statement.pdf"
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement.pdf", 404): lambda a: a.keyed.get(
        "/v1/invoices/999999/statement.pdf"
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement.pdf", 429): lambda a: a.over_rate(
        get("/v1/invoices/999999/statement.pdf")
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement.csv", 429): lambda a: a.over_rate(
        get("/v1/invoices/999999/statement.csv")
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement", 401): lambda a: a.anonymous.get(
        "/v1/invoices/1/statement"
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement", 404): lambda a: a.keyed.get(
        "/v1/invoices/999999/statement"
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement.csv", 401): lambda a: a.anonymous.get(
        "/v1/invoices/1/statement.csv"
    ),
    ("GET", "/v1/invoices/{invoice_id}/statement.csv", 404): lambda a: a.keyed.get(
        "/v1/invoices/999999/statement.csv"
    ),
    ("POST", "/v1/events", 400): lambda a: a.keyed.post(
        "/v1/events", {**EVENT, "input_tokens": -1}, format="json"
    ),
    ("POST", "/v1/events", 401): lambda a: a.anonymous.post("/v1/events", EVENT, format="json"),
    ("POST", "/v1/events", 413): lambda a: too_large(a, "/v1/events"),
    ("POST", "/v1/events", 415): not_json("/v1/events"),
    ("POST", "/v1/events", 429): lambda a: a.over_rate(json_post("/v1/events", EVENT)),
    ("GET", "/v1/health", 503): lambda a: health_with_the_broker_down(a.anonymous),
    ("POST", "/v1/outcomes", 400): lambda a: a.keyed.post(
        "/v1/outcomes", {**OUTCOME, "status": "maybe"}, format="json"
    ),
    ("POST", "/v1/outcomes", 401): lambda a: a.anonymous.post(
        "/v1/outcomes", OUTCOME, format="json"
    ),
    ("POST", "/v1/outcomes", 409): lambda a: a.keyed.post(
        "/v1/outcomes", {"id": "o-succeeded", "status": "pending"}, format="json"
    ),
    ("POST", "/v1/outcomes", 413): lambda a: too_large(a, "/v1/outcomes"),
    ("POST", "/v1/outcomes", 415): not_json("/v1/outcomes"),
    ("POST", "/v1/outcomes", 429): lambda a: a.over_rate(json_post("/v1/outcomes", OUTCOME)),
    ("GET", "/v1/outcomes/{external_id}", 401): lambda a: a.anonymous.get(
        "/v1/outcomes/o-succeeded"
    ),
    ("GET", "/v1/outcomes/{external_id}", 404): lambda a: a.keyed.get("/v1/outcomes/nobody"),
    ("POST", "/v1/outcomes/{external_id}/reverse", 401): lambda a: a.anonymous.post(
        "/v1/outcomes/o-succeeded/reverse"
    ),
    ("POST", "/v1/outcomes/{external_id}/reverse", 404): lambda a: a.keyed.post(
        "/v1/outcomes/nobody/reverse"
    ),
    ("POST", "/v1/outcomes/{external_id}/reverse", 409): lambda a: a.keyed.post(
        "/v1/outcomes/o-pending/reverse"
    ),
    ("POST", DISPUTES, 400): lambda a: a.keyed.post(
        "/v1/outcomes/o-succeeded/disputes", {"reason": ""}, format="json"
    ),
    ("POST", DISPUTES, 401): lambda a: a.anonymous.post(
        "/v1/outcomes/o-succeeded/disputes", {"reason": "x"}, format="json"
    ),
    ("POST", DISPUTES, 404): lambda a: a.keyed.post(
        "/v1/outcomes/nobody/disputes", {"reason": "x"}, format="json"
    ),
    ("POST", DISPUTES, 409): lambda a: a.keyed.post(
        "/v1/outcomes/o-pending/disputes", {"reason": "x"}, format="json"
    ),
    ("POST", DISPUTES, 415): not_json("/v1/outcomes/o-succeeded/disputes"),
    ("POST", DISPUTES, 429): lambda a: a.over_rate(
        json_post("/v1/outcomes/o-succeeded/disputes", {"reason": "x"})
    ),
    ("GET", DISPUTES, 401): lambda a: a.anonymous.get("/v1/outcomes/o-succeeded/disputes"),
    ("GET", DISPUTES, 404): lambda a: a.keyed.get("/v1/outcomes/nobody/disputes"),
    ("POST", PORTAL_LINKS, 400): lambda a: a.keyed.post(
        "/v1/customers/acme/portal-links", {"ttl_seconds": 1}, format="json"
    ),
    ("POST", PORTAL_LINKS, 401): lambda a: a.anonymous.post(
        "/v1/customers/acme/portal-links", {}, format="json"
    ),
    ("POST", PORTAL_LINKS, 404): lambda a: a.keyed.post(
        "/v1/customers/nobody/portal-links", {}, format="json"
    ),
    ("POST", PORTAL_LINKS, 415): not_json("/v1/customers/acme/portal-links"),
    ("POST", PORTAL_LINKS, 429): lambda a: a.over_rate(
        json_post("/v1/customers/acme/portal-links", {})
    ),
    ("GET", "/v1/plans/{code}", 401): lambda a: a.anonymous.get("/v1/plans/basic"),
    ("GET", "/v1/plans/{code}", 404): lambda a: a.keyed.get("/v1/plans/nothing"),
    ("PUT", "/v1/plans/{code}", 400): lambda a: a.keyed.put(
        "/v1/plans/basic", {**PLAN, "base_fee": "-1"}, format="json"
    ),
    ("PUT", "/v1/plans/{code}", 401): lambda a: a.anonymous.put(
        "/v1/plans/basic", PLAN, format="json"
    ),
    ("PUT", "/v1/plans/{code}", 415): not_json("/v1/plans/basic", "put"),
    ("PUT", "/v1/plans/{code}", 429): lambda a: a.over_rate(
        lambda c: c.put("/v1/plans/basic", PLAN, format="json")
    ),
    ("GET", "/v1/plans/{code}/versions", 400): lambda a: a.keyed.get(
        "/v1/plans/basic/versions?limit=x"
    ),
    ("GET", "/v1/plans/{code}/versions", 401): lambda a: a.anonymous.get(
        "/v1/plans/basic/versions"
    ),
    ("GET", "/v1/plans/{code}/versions", 404): lambda a: a.keyed.get("/v1/plans/nothing/versions"),
    ("GET", "/v1/plans/{code}/versions", 429): lambda a: a.over_rate(
        get("/v1/plans/basic/versions")
    ),
    ("GET", "/v1/price-overrides", 400): lambda a: a.keyed.get("/v1/price-overrides?offset=x"),
    ("GET", "/v1/price-overrides", 401): lambda a: a.anonymous.get("/v1/price-overrides"),
    ("GET", "/v1/price-overrides", 429): lambda a: a.over_rate(get("/v1/price-overrides")),
    ("POST", "/v1/price-overrides", 400): lambda a: a.keyed.post(
        "/v1/price-overrides", {**OVERRIDE, "input_per_mtok": "-1"}, format="json"
    ),
    ("POST", "/v1/price-overrides", 401): lambda a: a.anonymous.post(
        "/v1/price-overrides", OVERRIDE, format="json"
    ),
    ("POST", "/v1/price-overrides", 409): lambda a: twice(
        a, "/v1/price-overrides", OVERRIDE, {**OVERRIDE, "input_per_mtok": "0.2"}
    ),
    ("POST", "/v1/price-overrides", 415): not_json("/v1/price-overrides"),
    ("POST", "/v1/price-overrides", 429): lambda a: a.over_rate(
        json_post("/v1/price-overrides", OVERRIDE)
    ),
    ("GET", "/v1/plans", 400): lambda a: a.keyed.get("/v1/plans?offset=-1"),
    ("GET", "/v1/plans", 401): lambda a: a.anonymous.get("/v1/plans"),
    ("GET", "/v1/plans", 429): lambda a: a.over_rate(get("/v1/plans")),
    ("POST", "/v1/webhooks/stripe", 413): lambda a: too_large_webhook(a),
    ("POST", "/v1/webhooks/stripe", 429): lambda a: webhooks_over_rate(a),
    ("POST", "/v1/webhooks/stripe", 400): lambda a: a.anonymous.post(
        "/v1/webhooks/stripe",
        b"{}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    ),
}


def twice_accepted(api: Api, path: str, first: Any, second: Any) -> Any:
    """The second of two requests under one id, with other terms (the first is 202)."""
    assert api.keyed.post(path, first, format="json").status_code == 202
    return api.keyed.post(path, second, format="json")


def without_a_plan() -> str:
    customer_create(external_id="loner")
    return "/v1/customers/loner"


def reservation(api: Api) -> str:
    answer = api.keyed.post(f"{ACME}/authorize", SPEND, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["reservation"]["id"]


def settled_reservation(api: Api) -> str:
    made = reservation(api)
    settled = api.keyed.post(f"/v1/reservations/{made}/settle", SETTLE, format="json")
    assert settled.status_code == 200
    return made


def released_reservation(api: Api) -> str:
    made = reservation(api)
    assert api.keyed.post(f"/v1/reservations/{made}/release").status_code == 200
    return made


def twice(api: Api, path: str, first: Any, second: Any) -> Any:
    """The second of two creates for the same moment, with other figures."""
    assert api.keyed.post(path, first, format="json").status_code == 201
    return api.keyed.post(path, second, format="json")


def moved_after_an_invoice(api: Api) -> Any:
    customer = Customer.objects.get(external_id="acme")
    period_close(customer_id=customer.pk, period_start=datetime(2026, 10, 1, tzinfo=UTC))
    return api.keyed.put("/v1/customers/acme", {"billing_anchor_day": 15}, format="json")


def credit_note(api: Api, body: Any) -> Any:
    """A credit note asked for on acme's first invoice (a draft: no Stripe here, so it is
    as final as it gets)."""
    customer = Customer.objects.get(external_id="acme")
    invoice = period_close(customer_id=customer.pk, period_start=datetime(2026, 10, 1, tzinfo=UTC))
    return api.keyed.post(f"/v1/invoices/{invoice.pk}/credit-notes", body, format="json")


def too_large_webhook(api: Api) -> Any:
    api.settings.STRIPE_WEBHOOK_MAX_BODY_BYTES = 100
    return api.anonymous.post("/v1/webhooks/stripe", b"{}" * 100, content_type="application/json")


def webhooks_over_rate(api: Api) -> Any:
    api.settings.STRIPE_WEBHOOK_RATE_LIMIT = "1/h"
    api.anonymous.post("/v1/webhooks/stripe", b"{}", content_type="application/json")
    return api.anonymous.post("/v1/webhooks/stripe", b"{}", content_type="application/json")


def health_with_the_broker_down(client: APIClient) -> Any:
    with broker_down():
        return client.get("/v1/health")


def documented_errors(schema: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {
        (method.upper(), path, int(status))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in {"get", "put", "post", "patch", "delete"}
        for status in operation["responses"]
        if status[0] in "45"
    }


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return openapi_schema()


@pytest.fixture
def api(client_with_key: APIClient, expired_api_key: str, settings: Any) -> Api:
    settings.API_KEY_RATE_LIMIT = ""
    plan = plan_load(code="basic", base_fee="10")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(
        customer=customer, plan=plan.plan, started_at=datetime(2026, 10, 1, tzinfo=UTC)
    )
    now = timezone.now()
    for external_id, status in [("o-succeeded", "succeeded"), ("o-pending", "pending")]:
        Outcome.objects.create(
            external_id=external_id, customer=customer, type="resolution", status=status,
            occurred_at=now, succeeded_at=now if status == "succeeded" else None,
            succeeded_recorded_at=now if status == "succeeded" else None,
        )  # fmt: skip
    revoked, revoked_key = APIKey.objects.create_key(name="revoked")
    revoked.revoked = True
    revoked.save()
    return Api(
        keyed=client_with_key,
        anonymous=APIClient(),
        revoked_key=revoked_key,
        expired_key=expired_api_key,
        settings=settings,
    )


def test_every_documented_error_has_a_request_that_provokes_it(schema):
    documented = documented_errors(schema)

    assert sorted(documented - set(RECIPES)) == [], "documented, never provoked"
    assert sorted(set(RECIPES) - documented) == [], "provoked, not documented"


@pytest.mark.parametrize("operation", sorted(RECIPES), ids=lambda op: f"{op[0]} {op[1]} {op[2]}")
def test_the_documented_error_is_answered_as_documented(operation, api, schema):
    method, path, status = operation

    response = RECIPES[operation](api)

    assert response.status_code == status, response.content
    body = response.json()
    documented = schema["paths"][path][method.lower()]["responses"][str(status)]
    reference = documented["content"]["application/json"]["schema"]["$ref"]
    if reference.endswith("/Error"):
        assert body["errors"], body
        assert all({"code", "message"} <= set(error) for error in body["errors"]), body
    else:  # health: the checks, one of them failed
        assert body["status"] == "unavailable", body
    if status == 429:
        assert int(response["Retry-After"]) >= 1


# The ingest error codes of docs/api.md -> an event (or a body) that gets each.
def _old() -> str:
    return (timezone.now() - timedelta(days=400)).isoformat()


def _soon() -> str:
    return (timezone.now() + timedelta(hours=1)).isoformat()


INGEST_CODES: dict[str, Callable[[Api], Any]] = {
    "malformed_json": lambda a: a.keyed.post("/v1/events", b"{", content_type="application/json"),
    "invalid_body": event_post([1, 2]),
    "required": event_post({"customer": "acme"}),
    "unknown_field": event_post({**EVENT, "colour": "red"}),
    "invalid_type": event_post({**EVENT, "input_tokens": "many"}),
    "out_of_range": event_post({**EVENT, "input_tokens": -1}),
    "invalid_decimal": event_post({**EVENT, "cost": "a lot"}),
    "negative": event_post({**EVENT, "cost": "-1"}),
    "invalid_timestamp": event_post({**EVENT, "timestamp": "yesterday"}),
    "timestamp_without_offset": event_post({**EVENT, "timestamp": "2026-11-01T10:00:00"}),
    "timestamp_in_future": lambda a: a.keyed.post(
        "/v1/events", {**EVENT, "timestamp": _soon()}, format="json"
    ),
    "timestamp_too_old": lambda a: a.keyed.post(
        "/v1/events", {**EVENT, "timestamp": _old()}, format="json"
    ),
    "too_large": event_post({**EVENT, "properties": {"x": "y" * 9000}}),
    "exceeds_input_tokens": event_post({**EVENT, "cache_read_tokens": 2}),
    "too_many_events": event_post({"events": [EVENT] * 1001}),
    "unknown_customer": event_post({**EVENT, "customer": "nobody"}),
    "unsupported_media_type": not_json("/v1/events"),
    "body_too_large": lambda a: too_large(a, "/v1/events"),
    "not_authenticated": lambda a: a.anonymous.post("/v1/events", EVENT, format="json"),
    "invalid_api_key": lambda a: with_key("nope.nope"),
    "revoked_api_key": lambda a: with_key(a.revoked_key),
    "expired_api_key": lambda a: with_key(a.expired_key),
}


def with_key(key: str) -> Any:
    return APIClient(HTTP_AUTHORIZATION=f"Api-Key {key}").post("/v1/events", EVENT, format="json")


def documented_ingest_codes() -> set[str]:
    text = API_DOC.read_text()
    section = text[text.index("  Codes: `malformed_json`") : text.index("How exactly-once")]
    return set(re.findall(r"`([a-z_]+)`", section))


def test_every_ingest_error_code_in_the_api_reference_has_a_request_that_gets_it():
    assert sorted(documented_ingest_codes() ^ set(INGEST_CODES)) == []


@pytest.mark.parametrize("code", sorted(INGEST_CODES))
def test_the_ingest_error_code_is_answered(code, api):
    response = INGEST_CODES[code](api)

    assert 400 <= response.status_code < 500
    assert code in [error["code"] for error in response.json()["errors"]], response.content
