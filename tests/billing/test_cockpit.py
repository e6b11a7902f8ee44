"""The operator's cockpit: the dashboard's headline against the previous window, numbers
in the operator's locale, the margin waterfall, drill-down links and a page per customer;
the admin branded and opening on the dashboard. Checked through Django and in a real
headless Chromium at 1,400 pixels.

Two months worked by hand. Both customers pay a $1,000 base fee; `acme` also $2 per
resolution, each resolution's call costing $1 (gpt-4o); `beta` has one gpt-4o-mini call.

| revenue, cost | acme | beta | total | margin |
|---|---|---|---|---|
| October (closed) | 5 resolutions: $1,010, $5 | $1,000, $20 | $2,010, $25 | $1,985 (98.76 %) |
| November (open) | 10 resolutions: $1,020, $10 | $1,000, $30 | $2,020, $40 | $1,980 (98.02 %) |

November against October: revenue +0.5 %, cost +60.0 %, margin -0.3 %, margin % -0.7 %,
outcomes +100.0 %, cost per success $1 both months (0.0 %).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User

from billing.analytics.selectors.customers import customer_economics
from billing.analytics.selectors.dashboard import dashboard_page
from billing.analytics.selectors.margins import MarginFilters
from billing.analytics.services import invoices_reconcile
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from metering.models import Customer
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload
from tests.support.browser import chromium, severe_console_errors

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = {"from": "2026-11-01", "to": "2026-12-01"}
# Screenshots for people to look at after a run (var/ is not committed).
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


def _month(client, acme, start, resolutions, beta_cost):
    events = []
    for n in range(resolutions):
        at = start + timedelta(days=2, hours=n)
        external_id = f"r-{start:%m}-{n}"
        Outcome.objects.create(
            external_id=external_id, customer=acme, type="resolution", status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
        )  # fmt: skip
        events.append(
            event_payload("acme", outcome=external_id, cost="1", timestamp=at.isoformat())
        )
    events.append(
        event_payload(
            "beta",
            model="gpt-4o-mini",
            cost=beta_cost,
            timestamp=(start + timedelta(days=4)).isoformat(),
        )
    )
    response = client.post("/v1/events", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == len(events)


@pytest.fixture
def two_months(client_with_key, settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 400  # October's calls, sent today
    version = plan_load(
        "basic", base_fee="1000", outcomes=[{"type": "resolution", "unit_price": "2"}]
    )
    acme = customer_create(external_id="acme", name="Acme")
    beta = customer_create(external_id="beta", name="Beta")
    for customer in (acme, beta):
        Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    _month(client_with_key, acme, OCTOBER, 5, "20")
    _month(client_with_key, acme, NOVEMBER, 10, "30")
    for customer in (acme, beta):
        invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
        invoices_reconcile(invoice_ids=[invoice.pk])
    return client_with_key


def _figures(response):
    return {figure["name"]: figure for figure in response.context["headline"]}


def test_the_headline_is_the_api_total_with_its_change_against_the_month_before(
    two_months, staff_client
):
    api = two_months.get(
        "/v1/analytics/margins",
        {"from": NOVEMBER.isoformat(), "to": DECEMBER.isoformat(), "group_by": "customer"},
    ).json()["totals"]

    page = staff_client.get("/admin/dashboard/", WINDOW)

    figures = _figures(page)
    assert (
        {name: figures[name]["exact"] for name in ("revenue", "known_cost", "margin")}
        == {
            "revenue": api["revenue"],
            "known_cost": api["inference_cost"],
            "margin": api["margin"],
        }
        == {"revenue": "2020", "known_cost": "40", "margin": "1980"}
    )
    assert figures["margin_percent"]["exact"] == api["margin_percent"] == "98.02"
    assert figures["succeeded"]["exact"] == "10"
    assert {name: figure["change"] for name, figure in figures.items()} == {
        "revenue": "+0.5 %",
        "known_cost": "+60.0 %",
        "margin": "-0.3 %",
        "margin_percent": "-0.7 %",
        "cost_per_success": "0.0 %",
        "succeeded": "+100.0 %",
        "unpriced_calls": "—",  # none before: no change to speak of
    }
    assert figures["known_cost"]["tone"] == "bad" and figures["revenue"]["tone"] == "good"
    assert figures["revenue"]["value"] == "$2,020.00"
    assert figures["revenue"]["previous"] == "$2,010.00"
    assert figures["cost_per_success"]["value"] == "$1.00"


def test_the_table_is_sorted_and_paged_by_the_server(two_months, staff_client, monkeypatch):
    """Ten thousand customers are a CSV, not a page: the table shows TABLE_PAGE rows, sorted
    on every row (not only the page's) by the column asked, largest revenue first."""
    monkeypatch.setattr("billing.analytics.views.TABLE_PAGE", 1)

    def table(**asked: str) -> tuple[list[str], dict, dict]:
        page = staff_client.get("/admin/dashboard/", WINDOW | asked)
        assert page.status_code == 200, page.content
        sorted_by = {
            h["label"]: h["sorted"] for h in page.context["headings"] if h["sorted"] != "none"
        }
        return [row["key"] for row in page.context["rows"]], sorted_by, page.context["pager"]

    keys, sorted_by, pager = table()
    assert (keys, sorted_by) == (["acme"], {"Revenue": "descending"})  # $1,020 before $1,000
    assert (pager["first"], pager["last"], pager["count"], pager["previous"]) == (1, 1, 2, "")
    assert "page=2" in pager["next"] and "sort=revenue" in pager["next"]
    keys, _, pager = table(page="2")
    assert (keys, pager["next"]) == (["beta"], "")
    assert "page=1" in pager["previous"]
    assert table(page="9")[0] == ["beta"]  # past the end: the last page
    # By inference cost, lowest first: acme's $10 before beta's $30.
    assert table(sort="known_cost", order="asc")[:2] == (["acme"], {"Inference cost": "ascending"})
    assert table(sort="key", order="desc")[0] == ["beta"]
    # The totals stay every row's, and a heading's link keeps the window and grouping.
    page = staff_client.get("/admin/dashboard/", WINDOW | {"group_by": "customer"})
    assert page.context["totals"][0] == "$2,020.00"
    revenue = next(h for h in page.context["headings"] if h["label"] == "Revenue")
    assert "order=asc" in revenue["href"] and "group_by=customer" in revenue["href"]
    assert "from=2026-11-01" in revenue["href"]
    bad = staff_client.get("/admin/dashboard/", WINDOW | {"sort": "secret", "page": "0"})
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"sort", "page"}


def test_numbers_follow_the_operators_locale(two_months, staff_client, settings):
    settings.OPERATOR_LOCALE = "de_DE"

    page = staff_client.get("/admin/dashboard/", WINDOW)

    figures = _figures(page)
    assert figures["revenue"]["value"] == "2.020,00\xa0$"
    assert figures["margin_percent"]["value"] == "98,0 %"
    assert figures["margin"]["change"] == "-0,3 %"
    beta = next(row for row in page.context["rows"] if row["key"] == "beta")
    assert beta["cells"][0] == "1.000,00\xa0$"


def test_the_dashboard_reads_side_by_side_what_it_reads_in_turn(two_months):
    """Its reads run at once on connections of their own (common/concurrency.py): the
    page is the same as read one by one on the caller's."""
    window = {"start": NOVEMBER, "end": DECEMBER, "now": datetime(2026, 12, 1, 2, tzinfo=UTC)}
    for filters, group_by in (
        (MarginFilters(), "model"),
        (MarginFilters(customer="acme"), "customer"),
    ):
        at_once = dashboard_page(**window, filters=filters, group_by=group_by, readers=3)
        in_turn = dashboard_page(**window, filters=filters, group_by=group_by, readers=1)
        assert at_once == in_turn
        assert at_once.headline.current.revenue == (
            Decimal("2020") if filters.customer is None else Decimal("1020")
        )


def test_the_waterfall_goes_from_revenue_to_the_margin_by_model(two_months, staff_client):
    page = staff_client.get("/admin/dashboard/", WINDOW)

    steps = [(step["label"], step["amount"]) for step in page.context["waterfall"]]
    assert steps == [
        ("revenue", "$2,020.00"),
        ("openai:gpt-4o-mini", "-$30.00"),
        ("openai:gpt-4o", "-$10.00"),
        ("gross margin", "$1,980.00"),
    ]
    bars = page.context["charts"]["waterfall"]
    assert [bar["range"] for bar in bars] == [
        ["0", "2020"],
        ["1990", "2020"],
        ["1980", "1990"],
        ["0", "1980"],
    ]


def test_every_drill_down_opens_its_own_view(two_months, staff_client):
    by_model = staff_client.get("/admin/dashboard/", {**WINDOW, "group_by": "model"})
    by_type = staff_client.get("/admin/dashboard/", {**WINDOW, "group_by": "outcome_type"})
    by_customer = staff_client.get("/admin/dashboard/", WINDOW)

    links = {row["key"]: row["link"] for row in by_customer.context["rows"]}
    assert links["acme"] == "/admin/dashboard/customers/acme/"
    model_link = {row["key"]: row["link"] for row in by_model.context["rows"]}["openai:gpt-4o"]
    narrowed = staff_client.get(model_link)
    assert narrowed.status_code == 200
    assert _figures(narrowed)["known_cost"]["exact"] == "10"  # gpt-4o's calls only
    assert "Only model <strong>openai:gpt-4o</strong>" in narrowed.content.decode()
    type_link = {row["key"]: row["link"] for row in by_type.context["rows"]}["resolution"]
    assert _figures(staff_client.get(type_link))["succeeded"]["exact"] == "10"
    charts = by_customer.context["charts"]["links"]
    assert charts["margin_by_customer"] == [
        "/admin/dashboard/customers/acme/",
        "/admin/dashboard/customers/beta/",
    ]
    assert "model=openai%3Agpt-4o" in charts["cost_by_model"]["openai:gpt-4o"]
    customer = staff_client.get(links["acme"])
    assert customer.status_code == 200 and "acme: unit economics" in customer.content.decode()


def test_a_customer_page_tells_its_story(two_months, staff_client):
    acme = Customer.objects.get(external_id="acme")
    # Its figures as of a day in November (the page itself reads as of now, whatever the
    # day the suite runs on).
    found = customer_economics(customer=acme, now=datetime(2026, 11, 20, tzinfo=UTC))
    page = staff_client.get("/admin/dashboard/customers/acme/")

    periods = [
        (p.start, p.closed, p.figures.revenue, p.figures.cost_per_success) for p in found.periods
    ]
    assert periods == [
        (OCTOBER, True, Decimal("1010"), Decimal(1)),
        (NOVEMBER, False, Decimal("1020"), Decimal(1)),
    ]
    # Every call of acme's is a resolution's: its base fee is spread over them too.
    assert [row.key for row in found.by["outcome_type"].rows] == ["resolution"]
    assert found.preview is not None and found.preview.start == NOVEMBER
    assert page.status_code == 200
    context = page.context
    assert context["version"].plan.code == "basic"
    [invoice] = context["invoices"]
    assert (invoice["invoice"].period_start, invoice["total"]) == (OCTOBER, "$1,010.00")
    assert invoice["statement"].startswith("/statements/")
    assert context["periods"][0]["revenue"] == "$1,010.00"  # as the page writes it
    text = page.content.decode()
    assert "/admin/dashboard/?customer=acme&amp;outcome_type=resolution" in text
    assert staff_client.get("/admin/dashboard/customers/nobody/").status_code == 404
    customer_admin = staff_client.get(f"/admin/metering/customer/{acme.pk}/change/")
    assert "/admin/dashboard/customers/acme/" in customer_admin.content.decode()


def test_the_admin_is_paybacks_and_opens_on_the_dashboard(staff_client, client, db):
    landing = staff_client.get("/admin/")
    index = staff_client.get("/admin/", {"all": ""})
    clerk = User.objects.create_user("clerk", password="pw-clerk-12345", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(clerk)
    clerks_home = client.get("/admin/")

    assert (landing.status_code, landing["Location"]) == (302, "/admin/dashboard/")
    assert index.status_code == 200
    assert "<title>Operations | payback</title>" in index.content.decode()
    assert 'id="site-name"><a href="/admin/">payback</a>' in index.content.decode()
    assert "/admin/dashboard/" in index.content.decode()  # the link to it
    assert clerks_home.status_code == 200  # no analytics permission: the admin's home
    assert "/admin/dashboard/" not in clerks_home.content.decode()


def test_the_cockpit_in_a_browser_fits_1400_pixels_and_sorts(two_months, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    User.objects.create_superuser("admin", "admin@example.test", "pw-admin-12345")
    with chromium(tmp_path / "profile", width=1400) as driver:
        driver.get(
            f"{live_server.url}/admin/login/?next=/admin/dashboard/%3Ffrom%3D2026-11-01%26to%3D2026-12-01"
        )
        driver.find_element(By.NAME, "username").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys("pw-admin-12345")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        # Every chart drawn (each sizes itself to its card), then the page measured.
        WebDriverWait(driver, 20).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "canvas[data-chart]")
                and not d.find_elements(By.CSS_SELECTOR, "canvas[data-chart]:not([data-rendered])")
            )
        )
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " document.getElementById('margin-table').getBoundingClientRect().right];"
        )
        revenue = driver.find_element(By.CSS_SELECTOR, "#figure-revenue .value").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard-1400.png"))

        # Sorted by revenue, highest first; a click on the heading sorts the other way.
        revenue_heading = "#margin-table thead th:nth-child(2)"  # after the customer's

        def table() -> tuple[list[str], str | None]:
            cells = driver.find_elements(By.CSS_SELECTOR, "#margin-table tbody td:first-child")
            heading = driver.find_element(By.CSS_SELECTOR, revenue_heading)
            return [cell.text for cell in cells], heading.get_attribute("aria-sort")

        by_default = table()
        driver.find_element(By.CSS_SELECTOR, f"{revenue_heading} a").click()
        WebDriverWait(driver, 20).until(lambda d: "order=asc" in d.current_url)
        clicked = table()
        driver.find_element(By.LINK_TEXT, "acme").click()
        WebDriverWait(driver, 20).until(lambda d: "acme: unit economics" in d.title)
        customer_widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];"
        )
        driver.save_screenshot(str(ARTIFACTS / "customer-1400.png"))
        errors = severe_console_errors(driver)

    scroll, client_width, table_right = widths
    assert scroll <= client_width and table_right <= 1400, widths  # nothing overflows
    assert customer_widths[0] <= customer_widths[1], customer_widths
    assert revenue == "$2,020.00"
    assert by_default == (["acme", "beta"], "descending")
    assert clicked == (["beta", "acme"], "ascending")
    assert errors == []
    assert (ARTIFACTS / "dashboard-1400.png").stat().st_size > 10_000
