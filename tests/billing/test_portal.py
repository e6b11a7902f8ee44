"""The customer portal behind a signed, expiring link that the product backend asks for:
the running period so far as the API previews it, credits and their ledger, invoices with
their statements; read in a real browser; one customer's link never shows another's."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from billing.credits.services import GrantRequest, grant_create
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.browser import chromium

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def _customer(external_id: str, successes: int) -> None:
    """A customer on a $10 base fee and $0.99 per resolution since October: October closed
    with two resolutions, and `successes` so far this period; $5 of credits, which
    October's invoice used up."""
    version = plan_load(
        "chat", base_fee="10", outcomes=[{"type": "resolution", "unit_price": "0.99"}]
    )
    customer = customer_create(external_id=external_id, name=external_id.title())
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    grant_create(customer=customer, request=GrantRequest(amount=Decimal(5), currency="USD",
                 effective_at=OCTOBER))  # fmt: skip
    for n, at in enumerate([OCTOBER + timedelta(days=2)] * 2 + [timezone.now()] * successes):
        Outcome.objects.create(
            external_id=f"{external_id}-{n}", customer=customer, type="resolution",
            status="succeeded", occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
        )  # fmt: skip
    period_close(customer_id=customer.pk, period_start=OCTOBER)


def _link(client: APIClient, external_id: str, **body: Any) -> dict[str, Any]:
    answer = client.post(f"/v1/customers/{external_id}/portal-links", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_a_portal_link_opens_the_customers_period_credits_and_invoices(
    client_with_key: APIClient, settings: Any
) -> None:
    settings.PUBLIC_URL = "https://billing.example.test"
    _customer("acme", successes=3)

    link = _link(client_with_key, "acme", ttl_seconds=600)
    page = Client().get(link["path"])

    assert link["url"] == "https://billing.example.test" + link["path"]
    expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=9) < expires - timezone.now() <= timedelta(minutes=10)
    assert page.status_code == 200
    html = page.content.decode()
    usage = client_with_key.get("/v1/customers/acme/usage").json()
    preview_total = Decimal(usage["invoice_preview"]["total_decimal"])
    assert f"${preview_total:,.2f}" in html  # what the API previews, so far
    assert "Every outcome billed" in html and "/statements/" in html  # October's statement
    assert "Balance (USD)" in html


def test_a_changed_or_expired_portal_link_is_refused(
    client_with_key: APIClient, settings: Any
) -> None:
    _customer("acme", successes=0)
    path = _link(client_with_key, "acme", ttl_seconds=60)["path"]
    token = path.rsplit("/", 1)[1]
    customer_id, rest = token.split(".", 1)

    forged = f"/portal/{int(customer_id) + 1}.{rest}"  # another customer, this signature

    assert Client().get(forged).status_code == 403
    assert Client().get(path[:-2]).status_code == 403
    statement_token_as_portal = Client().get(path.replace("/portal/", "/statements/"))
    assert statement_token_as_portal.status_code == 403  # a salt per kind of link


def test_the_portal_in_a_real_browser_shows_only_its_customer(
    client_with_key: APIClient, live_server: Any, tmp_path: Any
) -> None:
    from selenium.webdriver.common.by import By

    _customer("acme", successes=3)
    _customer("globex", successes=1)
    acme = _link(client_with_key, "acme")["path"]
    globex = _link(client_with_key, "globex")["path"]
    usage = client_with_key.get("/v1/customers/acme/usage").json()

    with chromium(tmp_path / "profile", language="de-DE") as driver:
        driver.get(live_server.url + acme)
        total = driver.find_element(By.ID, "preview-total").get_attribute("textContent")
        body = driver.find_element(By.TAG_NAME, "body").text
        statement = driver.find_element(By.LINK_TEXT, "Every outcome billed")
        statement.click()
        statement_title = driver.title
        driver.get(live_server.url + globex)
        theirs = driver.find_element(By.TAG_NAME, "body").text

    # 10 + 3 × 0.99 so far, as the API previews it, as a German reads it.
    assert usage["invoice_preview"]["total"] == 1297
    assert total == "12,97\xa0$"
    assert "Acme" in body and "Globex" not in body
    assert "Statement of invoice" in statement_title
    assert "Globex" in theirs and "Acme" not in theirs
