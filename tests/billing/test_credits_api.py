"""The credits endpoints: grants made, retried, refused by field and voided; balances and
the ledger as a backend reads them."""

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from billing.credits.models import CreditGrant
from billing.credits.services import GrantRequest, grant_create, grant_void
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from billing.plans.selectors import customer_period
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db

GRANTS = "/v1/customers/acme/credits/grants"


@pytest.fixture
def acme():
    version = plan_load("pro", base_fee="50")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(
        customer=customer, plan=version.plan, started_at=timezone.now() - timedelta(days=40)
    )
    return customer


def post(client, path: str, body: dict):
    return client.post(path, body, format="json")


def test_a_grant_is_made_in_the_plans_currency_and_counts_as_available(client_with_key, acme):
    made = post(client_with_key, GRANTS, {"id": "welcome", "amount": "25.50"})

    assert made.status_code == 201, made.content
    grant = made.json()
    assert (grant["id"], grant["kind"], grant["currency"]) == ("welcome", "promotional", "USD")
    assert (grant["amount"], grant["balance"], grant["priority"]) == ("25.5", "25.5", 100)
    credits = client_with_key.get("/v1/customers/acme/credits").json()
    assert credits["balances"] == [
        {
            "currency": "USD",
            "available": "25.5",
            "granted": "25.5",
            "drawn": "0",
            "expired": "0",
            "voided": "0",
        }
    ]


def test_the_same_grant_again_is_the_same_grant_and_other_terms_are_refused(client_with_key, acme):
    first = post(client_with_key, GRANTS, {"id": "welcome", "amount": 25})
    again = post(client_with_key, GRANTS, {"id": "welcome", "amount": 25})
    other = post(client_with_key, GRANTS, {"id": "welcome", "amount": 30})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == first.json()
    assert other.json()["errors"][0]["field"] == "id"
    listed = client_with_key.get(GRANTS)
    assert [grant["id"] for grant in listed.json()] == ["welcome"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "-5"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1.005"}, "amount"),
        ({"amount": "10", "currency": "XYZ"}, "currency"),
        ({"amount": "10", "priority": -1}, "priority"),
        ({"amount": "10", "expires_at": "2026-01-01T00:00:00"}, "expires_at"),
        (
            {
                "amount": "10",
                "effective_at": "2026-05-01T00:00:00Z",
                "expires_at": "2026-04-01T00:00:00Z",
            },
            "expires_at",
        ),
        ({"amount": "10", "balance": "99"}, "balance"),
        ({}, "amount"),
    ],
)
def test_a_grant_it_cannot_make_is_refused_naming_the_field(client_with_key, acme, body, field):
    refused = post(client_with_key, GRANTS, body)

    assert refused.status_code == 400, refused.content
    assert [error["field"] for error in refused.json()["errors"]] == [field]
    assert client_with_key.get(GRANTS).json() == []


def test_a_customer_without_a_plan_needs_a_currency(client_with_key):
    customer_create(external_id="loner")
    path = "/v1/customers/loner/credits/grants"

    refused = post(client_with_key, path, {"amount": "10"})
    made = post(client_with_key, path, {"amount": "10", "currency": "eur"})

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "currency"
    assert made.status_code == 201 and made.json()["currency"] == "EUR"


def test_unknown_customers_and_grants_are_404(client_with_key, acme):
    assert client_with_key.get("/v1/customers/nobody/credits").status_code == 404
    assert (
        post(client_with_key, "/v1/customers/nobody/credits/grants", {"amount": 1}).status_code
        == 404
    )
    assert post(client_with_key, f"{GRANTS}/nope/void", {}).status_code == 404


def test_voiding_takes_back_what_is_left_and_the_ledger_shows_every_move(client_with_key, acme):
    post(
        client_with_key,
        GRANTS,
        {"id": "g1", "amount": "80", "effective_at": "2026-01-01T00:00:00Z"},
    )
    first_start = acme.subscription.started_at
    invoice = period_close(customer_id=acme.pk, period_start=_period_start(acme, first_start))

    voided = post(client_with_key, f"{GRANTS}/g1/void", {"reason": "ended"})

    assert voided.status_code == 200
    assert (voided.json()["balance"], voided.json()["void_reason"]) == ("0", "ended")
    ledger = client_with_key.get("/v1/customers/acme/credits/ledger").json()
    assert [(entry["kind"], entry["amount"], entry["invoice_id"]) for entry in ledger] == [
        ("grant", "80", None),
        ("drawn", "-50", invoice.pk),
        ("voided", "-30", None),
    ]
    credits = client_with_key.get("/v1/customers/acme/credits").json()["balances"][0]
    assert (credits["available"], credits["drawn"], credits["voided"]) == ("0", "50", "30")


def _period_start(customer, moment: datetime) -> datetime:
    period = customer_period(customer=customer, moment=moment)
    assert period is not None
    return period[0]


def test_the_ledger_is_paged(client_with_key, acme):
    for number in range(3):
        post(client_with_key, GRANTS, {"id": f"g{number}", "amount": "1"})

    page = client_with_key.get("/v1/customers/acme/credits/ledger", {"limit": 2})

    assert len(page.json()) == 2
    assert page["X-Total-Count"] == "3"
    assert "offset=2" in page["Link"]


def test_the_grants_and_ledger_are_in_the_schema(client_with_key):
    schema = client_with_key.get("/v1/schema", HTTP_ACCEPT="application/json").json()

    operations = {
        operation["operationId"] for path in schema["paths"].values() for operation in path.values()
    }
    assert {
        "customers_credits",
        "customers_credit_grants",
        "customers_credit_grants_create",
        "customers_credit_grants_void",
        "customers_credit_ledger",
    } <= operations
    assert {"Credits", "Grant", "Entry"} <= set(schema["components"]["schemas"])


def test_a_plan_says_the_credits_it_gives_each_period(client_with_key):
    document = {"name": "Included", "currency": "USD", "base_fee": "50"}
    credits = [{"amount": "20", "priority": 10, "rollover": True, "description": "AI usage"}]

    refused = client_with_key.put(
        "/v1/plans/included", {**document, "credits": [{"amount": "1.001"}]}, format="json"
    )
    saved = client_with_key.put(
        "/v1/plans/included", {**document, "credits": credits}, format="json"
    )

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "credits[0].amount"
    assert saved.status_code == 201, saved.content
    assert client_with_key.get("/v1/plans/included").json()["credits"] == credits


def test_the_admin_shows_a_customers_ledger_with_its_balance_over_time(staff_client, acme):
    for number, amount in enumerate(["30", "20"]):
        grant_create(
            customer=acme,
            request=GrantRequest(amount=Decimal(amount), currency="USD", external_id=f"g{number}"),
        )
    grant_void(grant_id=CreditGrant.objects.get(external_id="g1").pk, reason="test")

    listed = staff_client.get("/admin/credits/creditgrant/")
    page = staff_client.get(f"/admin/credits/creditgrant/customer/{acme.pk}/ledger/")

    assert f"/admin/credits/creditgrant/customer/{acme.pk}/ledger/" in listed.content.decode()
    body = page.content.decode()
    assert page.status_code == 200
    assert "USD: 30 now" in body
    points = re.search(r'points="([^"]+)"', body)[1].split()
    assert len(points) == 3  # granted 30, granted 20, voided 20
    assert [cell for cell in re.findall(r"<td>(-?[\d.]+)</td></tr>", body)] == ["30", "50", "30"]


def test_the_ledger_page_needs_the_view_permission(client, acme):
    clerk = User.objects.create_user("clerk", password="pw-clerk-12345", is_staff=True)
    client.force_login(clerk)

    page = client.get(f"/admin/credits/creditgrant/customer/{acme.pk}/ledger/")

    assert page.status_code == 403
