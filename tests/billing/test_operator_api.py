"""Running a month without the Django shell: plans, subscriptions, FX rates and price
overrides over the API, with the loaders' and the admin's checks."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.invoicing.models import FxRate
from billing.invoicing.services import period_close
from billing.plans.models import PlanVersion, Subscription
from metering.models import ModelPriceOverride
from tests.metering.factories import OVERRIDE

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
PLAN = {
    "name": "Support AI",
    "currency": "USD",
    "outcomes": [{"type": "resolution", "unit_price": 0.99, "included": 10}],
}


def put_plan(client, code, document):
    return client.put(f"/v1/plans/{code}", document, format="json")


def test_a_plan_document_is_put_as_load_plans_loads_it(client_with_key):
    created = put_plan(client_with_key, "support-ai", PLAN)
    again = put_plan(client_with_key, "support-ai", PLAN)
    changed = put_plan(client_with_key, "support-ai", {**PLAN, "base_fee": "49"})

    assert created.status_code == 201, created.content
    assert (created.json()["version"], created.json()["changed"]) == (1, True)
    # A JSON number is read as the decimal it spells, never a float.
    assert created.json()["outcomes"] == [
        {"type": "resolution", "unit_price": "0.99", "included": 10}
    ]
    assert (again.status_code, again.json()["version"], again.json()["changed"]) == (200, 1, False)
    assert (changed.json()["version"], changed.json()["base_fee"]) == (2, "49")
    current = client_with_key.get("/v1/plans/support-ai").json()
    assert (current["version"], current["base_fee"]) == (2, "49")


def test_a_bad_plan_document_is_refused_naming_the_key(client_with_key):
    response = put_plan(
        client_with_key,
        "share",
        {**PLAN, "outcomes": [{"type": "deal", "percentage": "5", "floor": "80", "cap": "50"}]},
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "outcomes[0].floor", "code": "invalid", "message": "is above the cap"}
    ]
    assert not PlanVersion.objects.exists()
    other = put_plan(client_with_key, "share", {**PLAN, "code": "other"})
    assert (other.status_code, other.json()["errors"][0]["field"]) == (400, "code")


def test_a_plans_versions_say_which_were_billed(client_with_key):
    put_plan(client_with_key, "support-ai", PLAN)
    client_with_key.put(
        "/v1/customers/acme",
        {"plan": "support-ai", "started_at": OCTOBER.isoformat()},
        format="json",
    )
    period_close(
        customer_id=Subscription.objects.get().customer_id, period_start=OCTOBER
    )  # v1 billed
    put_plan(client_with_key, "support-ai", {**PLAN, "base_fee": "5"})

    versions = client_with_key.get("/v1/plans/support-ai/versions").json()

    assert [(v["version"], v["billed"], v["base_fee"]) for v in versions] == [
        (2, False, "5"),
        (1, True, "0"),
    ]


def test_a_subscription_runs_its_periods_as_put(client_with_key):
    put_plan(client_with_key, "support-ai", PLAN)
    body = client_with_key.put(
        "/v1/customers/acme",
        {
            "plan": "support-ai",
            "started_at": "2026-10-10T00:00:00+02:00",
            "billing_anchor_day": 15,
            "timezone": "Europe/Berlin",
        },
        format="json",
    ).json()

    assert (body["started_at"], body["billing_anchor_day"], body["timezone"]) == (
        "2026-10-09T22:00:00Z",
        15,
        "Europe/Berlin",
    )

    def period(moment: str) -> tuple[str, str]:
        usage = client_with_key.get("/v1/customers/acme/usage", {"period": moment}).json()
        return usage["start"], usage["end"]

    # The first period runs from the start to the next anchor day, midnight in Berlin;
    # then anchor to anchor (an hour longer across the end of summer time).
    assert period("2026-10-12T12:00:00Z") == ("2026-10-09T22:00:00Z", "2026-10-14T22:00:00Z")
    assert period("2026-10-20T12:00:00Z") == ("2026-10-14T22:00:00Z", "2026-11-14T23:00:00Z")


def test_how_periods_run_cannot_change_once_one_is_invoiced(client_with_key):
    put_plan(client_with_key, "support-ai", PLAN)
    client_with_key.put(
        "/v1/customers/acme",
        {"plan": "support-ai", "started_at": OCTOBER.isoformat()},
        format="json",
    )
    assert (
        client_with_key.put(
            "/v1/customers/acme", {"billing_anchor_day": 5}, format="json"
        ).status_code
        == 200
    )  # nothing invoiced yet
    period_close(
        customer_id=Subscription.objects.get().customer_id,
        period_start=OCTOBER,
    )

    moved = client_with_key.put(
        "/v1/customers/acme", {"billing_anchor_day": 15, "timezone": "Asia/Tokyo"}, format="json"
    )
    same = client_with_key.put("/v1/customers/acme", {"billing_anchor_day": 5}, format="json")

    assert moved.status_code == 409
    assert [(e["field"], e["code"]) for e in moved.json()["errors"]] == [
        ("billing_anchor_day", "periods_invoiced"),
        ("timezone", "periods_invoiced"),
    ]
    assert same.status_code == 200
    assert Subscription.objects.get().billing_anchor_day == 5


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"billing_anchor_day": 32}, "billing_anchor_day"),
        ({"started_at": "2026-10-01T00:00:00"}, "started_at"),
    ],
)
def test_bad_subscription_fields_are_refused(client_with_key, fields, field):
    put_plan(client_with_key, "support-ai", PLAN)

    response = client_with_key.put(
        "/v1/customers/acme", {"plan": "support-ai", **fields}, format="json"
    )

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]


RATE = {"currency": "eur", "effective_from": "2026-10-01T00:00:00Z", "usd_per_unit": 1.0856}


def test_fx_rates_are_added_and_listed(client_with_key):
    created = client_with_key.post("/v1/fx-rates", RATE, format="json")
    again = client_with_key.post("/v1/fx-rates", RATE, format="json")
    other = client_with_key.post("/v1/fx-rates", {**RATE, "usd_per_unit": "1.2"}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["usd_per_unit"] == "1.0856" and created.json()["currency"] == "EUR"
    assert again.status_code == 200
    assert other.status_code == 409
    assert FxRate.objects.get().usd_per_unit == Decimal("1.0856")
    listed = client_with_key.get("/v1/fx-rates", {"currency": "EUR"}).json()
    assert [(r["currency"], r["usd_per_unit"]) for r in listed] == [("EUR", "1.0856")]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"currency": "USD"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"effective_from": "2026-10-01T00:00:00"}, "effective_from"),
        ({"effective_from": "2024-01-01T12:99:00Z"}, "effective_from"),
        ({"usd_per_unit": "0"}, "usd_per_unit"),
        ({"usd_per_unit": "1.0000000000001"}, "usd_per_unit"),  # 13 places
        ({"rate": "1"}, "rate"),
    ],
)
def test_a_bad_fx_rate_is_refused_naming_the_field(client_with_key, fields, field):
    response = client_with_key.post("/v1/fx-rates", {**RATE, **fields}, format="json")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert not FxRate.objects.exists()


def test_price_overrides_are_added_and_listed(client_with_key, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        created = client_with_key.post("/v1/price-overrides", OVERRIDE, format="json")
    again = client_with_key.post("/v1/price-overrides", OVERRIDE, format="json")
    other = client_with_key.post(
        "/v1/price-overrides", {**OVERRIDE, "input_per_mtok": "0.5"}, format="json"
    )

    assert created.status_code == 201, created.content
    assert (created.json()["input_per_mtok"], created.json()["output_per_mtok"]) == ("0.1", "0.2")
    assert created.json()["cache_read_per_mtok"] is None
    assert len(queued) == 1  # the repricing of the calls it covers, after the commit
    assert again.status_code == 200 and other.status_code == 409
    assert ModelPriceOverride.objects.count() == 1
    listed = client_with_key.get("/v1/price-overrides", {"model": "llama-3-8b-distilled"}).json()
    assert [o["id"] for o in listed] == [created.json()["id"]]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input_per_mtok": "-1"}, "input_per_mtok"),
        ({"input_per_mtok": "0.0000001"}, "input_per_mtok"),  # 7 places
        ({"effective_from": "yesterday"}, "effective_from"),
        ({"model": ""}, "model"),
        ({"cost_source": "override"}, "cost_source"),
    ],
)
def test_a_bad_price_override_is_refused_naming_the_field(client_with_key, fields, field):
    response = client_with_key.post("/v1/price-overrides", {**OVERRIDE, **fields}, format="json")

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert not ModelPriceOverride.objects.exists()
