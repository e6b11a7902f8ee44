"""The unit-economics dashboard in the admin: staff only, every chart drawn (checked in a
real headless Chromium against a live server), and its margin table as CSV."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from billing.plans.models import Subscription
from metering.models import UsageEvent
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload
from tests.support.browser import chromium, severe_console_errors

CHARTS = (
    "chart-waterfall",
    "chart-margin-by-customer",
    "chart-cost-by-model",
    "chart-cost-per-success",
    "chart-premium-histogram",
    "chart-savings",
)


# The 30 days before today: the days of economics()' calls, and not a period that starts
# today (on a month's first day, the month's base fees billed for nothing yet).
UP_TO_TODAY = {"to": timezone.now().date().isoformat()}


def economics() -> None:
    """Three days of calls: `fin` earns on outcomes, `duo` loses on premium heavy users,
    and both use caching."""
    outcomes_plan = plan_load("outcomes", outcomes=[{"type": "resolution", "unit_price": "2"}])
    premium_plan = plan_load("premium", base_fee="10", premium_seat_fee="10", seat_mode="active")
    started = timezone.now() - timedelta(days=10)
    fin = customer_create(external_id="fin")
    duo = customer_create(external_id="duo")
    Subscription.objects.create(customer=fin, plan=outcomes_plan.plan, started_at=started)
    Subscription.objects.create(customer=duo, plan=premium_plan.plan, started_at=started)
    events = []
    for day in range(1, 4):
        at = timezone.now() - timedelta(days=day)
        for n in range(3):
            external_id = f"fin-{day}-{n}"
            Outcome.objects.create(
                external_id=external_id,
                customer=fin,
                type="resolution",
                status="succeeded",
                occurred_at=at,
                succeeded_at=at,
                succeeded_recorded_at=at,
            )
            events.append(
                event_payload(
                    "fin",
                    outcome=external_id,
                    cost=f"0.{day}",
                    prompt_hash="faq",
                    timestamp=at.isoformat(),
                )
            )
        for user, cost in (("heavy", "9"), ("light", "2"), ("mid", "4")):
            events.append(
                event_payload(
                    "duo",
                    user=user,
                    tier="premium",
                    model="gpt-4o-mini",
                    cost=cost,
                    timestamp=at.isoformat(),
                )
            )
        events.append(
            event_payload(
                "duo", model="gpt-4o-mini", cache_hit=True, cost="0", timestamp=at.isoformat()
            )
        )
    _, key = APIKey.objects.create_key(name="dashboard test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = client.post("/v1/events", {"events": events}, format="json")
    assert response.json()["accepted"] == len(events)


@pytest.fixture
def dashboard_data(db: None) -> None:
    economics()


def test_the_dashboard_is_for_staff_only(client, db):
    assert client.get("/admin/dashboard/").status_code == 302  # to the login page
    User.objects.create_user("clerk", password="pw-clerk-12345")
    client.force_login(User.objects.get(username="clerk"))
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/admin/dashboard/margins.csv").status_code == 302


def test_the_dashboard_page_holds_every_chart_and_the_margin_table(staff_client, dashboard_data):
    response = staff_client.get("/admin/dashboard/")

    assert response.status_code == 200
    page = response.content.decode()
    for chart in CHARTS:
        assert f'id="{chart}"' in page
    assert "/static/billing/vendor/chartjs/chart.umd.min.js" in page  # served here, no CDN
    charts = response.context["charts"]
    assert charts["margin_by_customer"]["labels"] == ["fin", "duo"]
    assert charts["premium_histogram"]["counts"][-1] == 1  # heavy: 27 USD over a 10 USD fee
    assert len(charts["cost_by_model"]["labels"]) == 3


def test_the_admin_home_links_to_the_dashboard(staff_client):
    assert "/admin/dashboard/" in staff_client.get("/admin/?all").content.decode()


def test_the_margin_table_exports_as_csv(staff_client, dashboard_data):
    response = staff_client.get(
        "/admin/dashboard/margins.csv", {"group_by": "customer", **UP_TO_TODAY}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_key = {row["key"]: row for row in rows}
    # fin: 9 successes at $2 = $18 against 3 x (0.1 + 0.2 + 0.3) = $1.80 of calls
    assert (by_key["fin"]["revenue"], by_key["fin"]["inference_cost"]) == ("18", "1.8")
    assert by_key["fin"]["succeeded"] == "9"
    assert by_key["duo"]["margin"].startswith("-")
    assert by_key["total"]["calls"] == str(9 + 12)
    assert {row["currency"] for row in rows} == {"USD"}


def test_the_csv_leaves_an_unknown_cost_empty_and_says_so(staff_client, dashboard_data):
    unpriced = customer_create(external_id="unpriced-co")
    UsageEvent.objects.create(
        event_id="secret-1", customer=unpriced, timestamp=timezone.now() - timedelta(days=1),
        received_at=timezone.now(), provider="acme-ai", model="secret", cost=None,
        cost_source="unpriced",
    )  # fmt: skip

    response = staff_client.get(
        "/admin/dashboard/margins.csv", {"group_by": "model", **UP_TO_TODAY}
    )

    by_key = {row["key"]: row for row in csv.DictReader(io.StringIO(response.content.decode()))}
    secret = by_key["acme-ai:secret"]
    assert (secret["inference_cost"], secret["cost_status"], secret["margin"]) == (
        "",
        "unknown",
        "",
    )
    assert secret["unpriced_calls"] == "1"
    assert by_key["total"]["cost_status"] == "incomplete"
    assert by_key["openai:gpt-4o-mini"]["cost_status"] == "complete"


def test_the_csv_neutralises_cells_a_spreadsheet_would_run(staff_client, dashboard_data):
    hostile = customer_create(external_id='=HYPERLINK("http://evil.test")')
    for feature in ("@SUM(1+1)", "+1+1", "-2+3", "\tcmd"):
        UsageEvent.objects.create(
            event_id=f"hostile-{feature}", customer=hostile, feature=feature, cost="1",
            timestamp=timezone.now() - timedelta(days=1), received_at=timezone.now(),
            cost_source="explicit",
        )  # fmt: skip

    by_customer = staff_client.get(
        "/admin/dashboard/margins.csv", {"group_by": "customer", **UP_TO_TODAY}
    )
    by_feature = staff_client.get(
        "/admin/dashboard/margins.csv", {"group_by": "feature", **UP_TO_TODAY}
    )

    customers = {
        row["key"]: row for row in csv.DictReader(io.StringIO(by_customer.content.decode()))
    }
    assert '\'=HYPERLINK("http://evil.test")' in customers
    assert customers["duo"]["margin"].startswith("-")  # a negative number stays a number
    features = {row["key"] for row in csv.DictReader(io.StringIO(by_feature.content.decode()))}
    assert {"'@SUM(1+1)", "'+1+1", "'-2+3", "'\tcmd"} <= features


def test_a_bad_window_is_refused(staff_client):
    response = staff_client.get("/admin/dashboard/", {"from": "2026-11-10", "to": "2026-11-01"})

    assert response.status_code == 400
    assert "must be after" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_every_chart_renders_in_headless_chromium(live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    economics()
    User.objects.create_superuser("admin", "admin@example.test", "pw-admin-12345")
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{live_server.url}/admin/login/?next=/admin/dashboard/")
        driver.find_element(By.NAME, "username").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys("pw-admin-12345")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(driver, 20).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "canvas[data-rendered]")) == len(CHARTS)
        )
        drawn = driver.execute_script(
            """
            return arguments[0].map((id) => {
              const canvas = document.getElementById(id);
              const chart = Chart.getChart(canvas);
              const pixels = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
              let painted = 0;
              for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
              // Every drawn element has a place on both axes (a chart given the wrong
              // axes draws its frame but leaves its bars nowhere).
              const elements = chart ? chart.data.datasets.flatMap((d, i) =>
                chart.getDatasetMeta(i).data.filter((e, j) => d.data[j] !== null)) : [];
              return {
                id, rendered: canvas.dataset.rendered, chart: Boolean(chart),
                points: elements.length,
                placed: elements.every((e) => Number.isFinite(e.x) && Number.isFinite(e.y)),
                painted,
              };
            });
            """,
            list(CHARTS),
        )
        screenshot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(screenshot))
        errors = severe_console_errors(driver)

    for chart in drawn:
        assert chart["rendered"] == "true", chart
        assert chart["chart"] and chart["points"] > 0 and chart["placed"], chart
        assert chart["painted"] > 1000, chart  # pixels drawn on the canvas
    assert errors == []
    assert screenshot.stat().st_size > 10_000
