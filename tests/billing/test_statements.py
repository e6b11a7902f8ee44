"""An invoice's statement (billing/statements): which outcomes it billed and what each one
carried, as a customer checks it: every outcome of the close and no other, the fees of a
line sum to that line, and the lines to the invoice, for every price model; a page at a
time or as one CSV."""

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.invoicing.models import FxRate, Invoice
from billing.invoicing.services import period_close
from billing.money import to_minor_units
from billing.plans.models import Subscription
from billing.statements.links import statement_path, statement_token
from metering.models import Customer, UsageEvent
from outcomes.models import Outcome
from outcomes.services import outcome_reverse
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.browser import chromium, severe_console_errors

pytestmark = pytest.mark.django_db(transaction=True)  # closes bill committed facts

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def _customer(**price: Any) -> Customer:
    version = plan_load("chat", outcomes=[{"type": "resolution", **price}])
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return customer


def _succeed(customer: Customer, count: int, *, value: str | None = None, start: int = 0) -> None:
    for n in range(start, start + count):
        at = OCTOBER + timedelta(days=1, hours=n)
        Outcome.objects.create(
            external_id=f"r-{n:03}", customer=customer, type="resolution", status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=at, value=value,
            value_currency="USD" if value is not None else "",
        )  # fmt: skip


def _reverse(external_id: str) -> None:
    outcome_reverse(
        external_id=external_id,
        window=timedelta(days=3650),
        now=OCTOBER + timedelta(days=20),
    )


def _statement(client: APIClient, invoice: Invoice, **query: Any) -> dict[str, Any]:
    answer = client.get(f"/v1/invoices/{invoice.pk}/statement", query)
    assert answer.status_code == 200, answer.content
    return answer.json()


def _all_outcomes(client: APIClient, invoice: Invoice, limit: int = 7) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = _statement(client, invoice, limit=limit, offset=len(found))["outcomes"]
        found += page
        if len(page) < limit:
            return found


def _fees_reconcile(body: dict[str, Any], outcomes: list[dict[str, Any]]) -> None:
    """Each outcome line's amount is its outcomes' fees, rounded once; the lines sum to
    the invoice."""
    fees: dict[int, Decimal] = defaultdict(Decimal)
    for outcome in outcomes:
        fees[outcome["line"]] += Decimal(outcome["fee"])
    currency = body["invoice"]["currency"]
    for line in body["lines"]:
        if line["kind"] in ("outcome", "included"):
            assert to_minor_units(fees[line["position"]], currency) == line["amount"], line
    assert body["lines_total"] == body["invoice"]["total"]


def test_graduated_tiers_after_the_included_ones_are_explained_outcome_by_outcome(
    client_with_key: APIClient,
) -> None:
    tiers = [{"up_to": 5, "unit_price": "1.00"}, {"unit_price": "0.50"}]
    customer = _customer(included=3, tier_mode="graduated", tiers=tiers)
    _succeed(customer, 12)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    body = _statement(client_with_key, invoice)
    outcomes = _all_outcomes(client_with_key, invoice)

    assert body["outcomes_total"] == 12 and len(outcomes) == 12
    assert [o["id"] for o in outcomes] == [f"r-{n:03}" for n in range(12)]  # by success
    assert [(o["allowance"], o["fee"]) for o in outcomes] == (
        [("included", "0")] * 3 + [("tier", "1")] * 5 + [("tier", "0.5")] * 4
    )
    assert body["outcome_types"] == [
        {"type": "resolution", "outcomes": 12, "included": 3, "amount": 700}
    ]
    _fees_reconcile(body, outcomes)
    assert invoice.total == 700


def test_a_tiers_flat_fee_is_a_line_of_the_type_that_no_outcome_carries(
    client_with_key: APIClient,
) -> None:
    """3 included of 12; 9 billable: 5 x $1.00 + the first tier's $20 fee, 4 x $0.50 + the
    second's $5: $32.00, all of it the type's amount; the outcomes' fees explain the
    outcome lines ($7.00), the fee lines stand on their own."""
    tiers = [{"up_to": 5, "unit_price": "1.00", "flat_fee": "20"},
             {"unit_price": "0.50", "flat_fee": "5"}]  # fmt: skip
    customer = _customer(included=3, tier_mode="graduated", tiers=tiers)
    _succeed(customer, 12)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    body = _statement(client_with_key, invoice)
    outcomes = _all_outcomes(client_with_key, invoice)

    assert [(line["kind"], line["amount"]) for line in body["lines"]] == [
        ("included", 0), ("outcome", 500), ("tier_fee", 2000), ("outcome", 200),
        ("tier_fee", 500),
    ]  # fmt: skip
    assert body["outcome_types"] == [
        {"type": "resolution", "outcomes": 12, "included": 3, "amount": 3200}
    ]
    assert sum(Decimal(o["fee"]) for o in outcomes) == Decimal(7)
    _fees_reconcile(body, outcomes)
    assert invoice.total == 3200


def test_a_package_bills_its_block_price_on_each_blocks_first_outcome(
    client_with_key: APIClient,
) -> None:
    customer = _customer(unit_price="5.00", package_size=10)
    _succeed(customer, 23)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    outcomes = _all_outcomes(client_with_key, invoice, limit=10)

    charged = [(o["block"], o["fee"]) for o in outcomes if o["fee"] != "0"]
    assert charged == [(1, "5"), (2, "5"), (3, "5")]
    assert {o["block"] for o in outcomes[20:]} == {3}
    _fees_reconcile(_statement(client_with_key, invoice), outcomes)
    assert invoice.total == 1500


def test_a_volume_tier_prices_every_outcome_at_the_tier_reached(
    client_with_key: APIClient,
) -> None:
    customer = _customer(tier_mode="volume", tiers=[{"up_to": 5, "unit_price": "1.00"},
                                                    {"unit_price": "0.70"}])  # fmt: skip
    _succeed(customer, 7)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    outcomes = _all_outcomes(client_with_key, invoice)

    assert {(o["allowance"], o["fee"]) for o in outcomes} == {("volume", "0.7")}
    _fees_reconcile(_statement(client_with_key, invoice), outcomes)
    assert invoice.total == 490


def test_a_percentage_shows_each_outcomes_clamped_share_of_its_value(
    client_with_key: APIClient,
) -> None:
    customer = _customer(percentage="2.5", floor="1.00", cap="20", included=1)
    _succeed(customer, 1, value="100")  # included
    _succeed(customer, 1, value="10", start=1)  # 0.25, raised to the floor
    _succeed(customer, 1, value="333.33", start=2)  # 8.33325
    _succeed(customer, 1, value="5000", start=3)  # 125, lowered to the cap
    _succeed(customer, 1, start=4)  # no value: the floor
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    body = _statement(client_with_key, invoice)
    outcomes = body["outcomes"]

    assert [(o["allowance"], o["fee"]) for o in outcomes] == [
        ("included", "0"), ("percentage", "1"), ("percentage", "8.33325"),
        ("percentage", "20"), ("percentage", "1"),
    ]  # fmt: skip
    _fees_reconcile(body, outcomes)
    assert invoice.total == 3033  # 30.33325, rounded once, on the line


def test_a_value_in_another_currency_is_converted_as_the_rating_did(
    client_with_key: APIClient,
) -> None:
    customer = _customer(percentage="5")
    FxRate.objects.create(currency="EUR", effective_from=OCTOBER, usd_per_unit="1.25")
    at = OCTOBER + timedelta(days=2)
    Outcome.objects.create(
        external_id="deal-eur", customer=customer, type="resolution", status="succeeded",
        occurred_at=at, succeeded_at=at, succeeded_recorded_at=at, value="100",
        value_currency="EUR",
    )  # fmt: skip
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    body = _statement(client_with_key, invoice)

    (outcome,) = body["outcomes"]
    assert (outcome["value"], outcome["value_currency"]) == ("100", "EUR")
    assert Decimal(outcome["fee"]) == Decimal("6.25")  # 5 % of 125 USD
    assert not outcome["fx_rate_missing"]
    _fees_reconcile(body, body["outcomes"])


def test_the_statement_is_what_the_close_saw(client_with_key: APIClient) -> None:
    customer = _customer(unit_price="0.99")
    _succeed(customer, 3)
    _reverse("r-002")  # before the close
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    _reverse("r-000")  # after it
    _succeed(customer, 1, start=5)  # a success of October that arrives late

    body = _statement(client_with_key, invoice)

    assert [(o["id"], o["status_now"]) for o in body["outcomes"]] == [
        ("r-000", "reversed"), ("r-001", "succeeded"),
    ]  # fmt: skip
    assert body["lines_total"] == invoice.total == 198


def test_premium_seats_are_listed_with_their_days(client_with_key: APIClient) -> None:
    version = plan_load("max", premium_seat_fee="10", seat_mode="active")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for user, days in (("ana", (2, 2, 9)), ("ben", (5,))):
        for number, day in enumerate(days):
            UsageEvent.objects.create(
                event_id=f"{user}-{number}", customer=customer, tier="premium", end_user=user,
                timestamp=OCTOBER + timedelta(days=day), received_at=OCTOBER, model="gpt-4o",
                cost=Decimal("0.001"), cost_source="explicit",
            )  # fmt: skip
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    body = _statement(client_with_key, invoice)

    assert body["seats"] == [
        {"user": "ana", "active_days": 2, "first_day": "2026-10-03", "last_day": "2026-10-10"},
        {"user": "ben", "active_days": 1, "first_day": "2026-10-06", "last_day": "2026-10-06"},
    ]
    assert invoice.total == 2000


def test_the_csv_streams_lines_outcomes_and_the_invoices_total(
    client_with_key: APIClient,
) -> None:
    customer = _customer(included=2, unit_price="0.99")
    _succeed(customer, 5)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    answer = client_with_key.get(f"/v1/invoices/{invoice.pk}/statement.csv")

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    assert answer.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    outcomes = [r for r in rows if r["section"] == "outcome"]
    assert [r["fee"] for r in outcomes] == ["0", "0", "0.99", "0.99", "0.99"]
    assert [r["section"] for r in rows if r["section"] != "outcome"] == ["line", "line", "total"]
    assert Decimal(rows[-1]["amount"]) == Decimal("2.97") == Decimal(invoice.total) / 100


def test_an_unknown_invoice_is_a_404_and_a_key_is_needed(client_with_key: APIClient) -> None:
    assert client_with_key.get("/v1/invoices/999/statement").status_code == 404
    assert APIClient().get("/v1/invoices/999/statement").status_code == 401


def test_the_hosted_page_shows_the_statement_behind_its_signed_link(client: Any) -> None:
    customer = _customer(included=1, unit_price="0.99")
    _succeed(customer, 3)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    page = client.get(statement_path(invoice.pk), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    csv_answer = client.get(statement_path(invoice.pk) + "/statement.csv")

    assert page.status_code == 200
    html = page.content.decode()
    assert "1,98\xa0$" in html  # the invoice's total, in the reader's locale (German)
    for n in range(3):
        assert f"r-{n:03}" in html
    assert "included" in html and "0,99" in html
    assert csv_answer.status_code == 200
    rows = b"".join(csv_answer.streaming_content).decode().splitlines()
    assert rows[-1].startswith("total,") and "1.98" in rows[-1]


def test_a_changed_or_expired_link_is_refused(client: Any, settings: Any) -> None:
    customer = _customer(unit_price="0.99")
    _succeed(customer, 1)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    other = statement_path(invoice.pk + 1)  # another invoice's link: its own signature
    token = statement_token(invoice.pk)
    forged = f"{invoice.pk + 1}:{token.split(':', 1)[1]}"  # this signature, another id

    assert client.get(f"/statements/{forged}").status_code == 403
    assert client.get(f"/statements/{token[:-2]}").status_code == 403
    assert client.get(f"/statements/{forged}/statement.csv").status_code == 403
    assert client.get(other).status_code == 404  # signed, but no such invoice
    settings.STATEMENT_LINK_DAYS = 0
    expired = client.get(statement_path(invoice.pk))
    assert expired.status_code == 410
    assert "expired" in expired.content.decode()


def test_the_hosted_statement_in_a_real_browser(live_server: Any, tmp_path: Any) -> None:
    """Debian's chromium reading the page as a German customer: the figures the API gives,
    in German; labelled tables a keyboard reaches; a changed link refused; and another
    customer's link showing only that customer's statement."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    customer = _customer(included=1, unit_price="1234.5")
    _succeed(customer, 3)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    other = customer_create(external_id="globex")
    Subscription.objects.create(customer=other, plan=customer.subscription.plan,
                                started_at=OCTOBER)  # fmt: skip
    at = OCTOBER + timedelta(days=4)
    Outcome.objects.create(
        external_id="g-1", customer=other, type="resolution", status="succeeded",
        occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
    )  # fmt: skip
    theirs = period_close(customer_id=other.pk, period_start=OCTOBER)

    with chromium(tmp_path / "profile", language="de-DE") as driver:
        driver.get(live_server.url + statement_path(invoice.pk))
        total = driver.find_element(By.ID, "invoice-total").get_attribute("textContent")
        rows = driver.find_elements(By.CSS_SELECTOR, "#outcomes tbody tr")
        fees = [row.find_elements(By.TAG_NAME, "td")[4].text for row in rows]
        labelled = driver.execute_script(
            "return [...document.querySelectorAll('table')].every(t => "
            "document.getElementById(t.getAttribute('aria-labelledby')))"
            " && [...document.querySelectorAll('th')].every(th => th.scope === 'col')"
        )
        language = driver.find_element(By.TAG_NAME, "html").get_attribute("lang")
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        focused = driver.switch_to.active_element.tag_name
        page_text = driver.find_element(By.TAG_NAME, "body").text
        driver.get(live_server.url + statement_path(invoice.pk)[:-3] + "xyz")
        refused_title = driver.title
        driver.get(live_server.url + statement_path(theirs.pk))
        their_text = driver.find_element(By.TAG_NAME, "body").text
        errors = severe_console_errors(driver)

    assert total == "2.469,00\xa0$"  # the API's total (246900 cents), as a German reads it
    assert invoice.total == 246900
    assert fees == ["0", "1.234,5", "1.234,5"]  # included first, then the unit price
    assert labelled and language == "de"
    assert focused == "a"  # the first link takes the keyboard's focus
    assert "r-000" in page_text and "g-1" not in page_text
    assert "not valid" in refused_title
    assert "g-1" in their_text and "r-000" not in their_text and "globex" in their_text
    assert all("403" in error["message"] for error in errors), errors  # only the refusal


def test_the_pdf_has_the_statements_figures(client_with_key: APIClient, client: Any) -> None:
    from pypdf import PdfReader

    customer = _customer(included=1, unit_price="0.99")
    _succeed(customer, 3)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    answer = client_with_key.get(f"/v1/invoices/{invoice.pk}/statement.pdf")
    hosted = client.get(statement_path(invoice.pk) + "/statement.pdf")

    assert answer.status_code == 200 and answer["Content-Type"] == "application/pdf"
    assert hosted.status_code == 200 and hosted.content[:5] == b"%PDF-"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    assert "Statement of invoice" in text and "total 1.98 USD" in text
    for n in range(3):
        assert f"r-{n:03}" in text
    assert "resolution: 2 outcomes" in text  # its line, as on the invoice
