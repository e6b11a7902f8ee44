"""Health, the OpenAPI schema and the docs page, the admin."""

import gc
import json

import pytest
from django.contrib.auth.models import User
from django.db import connections
from rest_framework.test import APIClient

from api.health import database_status
from config.celery import app as celery_app
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


def test_health_is_ok_when_database_and_broker_answer():
    response = APIClient().get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": {"ok": True}, "broker": {"ok": True}}


def test_health_is_503_when_the_broker_is_down():
    """A real connection attempt to a port where no broker listens."""
    saved = celery_app.conf.broker_url, celery_app.conf.broker_write_url
    celery_app.conf.broker_url = celery_app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    try:
        response = APIClient().get("/v1/health")
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_write_url = saved
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["ok"] is True and body["broker"]["ok"] is False


def test_database_status_reports_a_database_that_does_not_answer():
    """A real connection attempt to a port where no PostgreSQL listens."""
    connection = connections["default"]
    settings_dict = {
        **connection.settings_dict,
        "HOST": "127.0.0.1",
        "PORT": "1",
        "OPTIONS": {"connect_timeout": 2},
    }
    unreachable = connection.__class__(settings_dict)
    try:
        assert database_status(unreachable) == {"ok": False, "error": "OperationalError"}
    finally:
        unreachable.close()
    assert database_status() == {"ok": True}


def schema(client_with_key) -> dict:
    response = client_with_key.get("/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_lists_every_event_field(client_with_key):
    components = schema(client_with_key)["components"]["schemas"]
    fields = set(components["EventInputRequest"]["properties"])
    assert fields == {
        "id",
        "customer",
        "timestamp",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost",
        "outcome",
        "user",
        "feature",
        "tier",
        "prompt_hash",
        "cache_hit",
        "properties",
        "reservation",
    }
    assert set(components["EventInputRequest"]["required"]) == {"id", "customer"}
    assert set(components["IngestResult"]["properties"]) == {"accepted", "duplicates", "conflicts"}
    assert set(components["ErrorItem"]["properties"]) == {"index", "field", "code", "message"}


def test_schema_field_list_matches_the_ingest_struct(client_with_key):
    """The documented fields and the fields the hot path accepts are the same set."""
    from metering.schemas import EventIn

    components = schema(client_with_key)["components"]["schemas"]
    assert set(components["EventInputRequest"]["properties"]) == set(EventIn.__struct_fields__)


def test_schema_lists_every_endpoint(client_with_key):
    paths = schema(client_with_key)["paths"]
    assert {
        "/v1/events",
        "/v1/customers/{external_id}",
        "/v1/customers/{external_id}/usage",
        "/v1/health",
        "/v1/outcomes",
        "/v1/outcomes/{external_id}",
        "/v1/outcomes/{external_id}/reverse",
        "/v1/plans",
        "/v1/plans/{code}",
        "/v1/plans/{code}/versions",
        "/v1/invoices/{invoice_id}",
        "/v1/fx-rates",
        "/v1/price-overrides",
    } <= set(paths)
    assert set(paths["/v1/customers/{external_id}"]) == {"get", "put"}
    customer = schema(client_with_key)["components"]["schemas"]["CustomerWithPlanInputRequest"]
    assert set(customer["properties"]) == {
        "name",
        "email",
        "currency",
        "metadata",
        "plan",
        "premium_seats",
        "started_at",
        "billing_anchor_day",
        "timezone",
    }
    # The answers are typed: the analytics reports and invoice lines are components.
    components = schema(client_with_key)["components"]["schemas"]
    assert {"MarginReport", "MarginRow", "Savings", "PremiumBreakEven"} <= set(components)
    for line in ("StoredInvoiceLine", "PreviewLine"):
        assert components[line]["properties"]["kind"]["$ref"].endswith("/InvoiceLineKindEnum")
    assert {"late_usage", "credit"} <= set(components["InvoiceLineKindEnum"]["enum"])


def test_docs_page_opens_for_a_logged_in_operator(client):
    User.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    client.force_login(User.objects.get(username="ops"))
    response = client.get("/v1/docs")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert b"cdn" not in response.content.lower()  # assets served locally (sidecar)


def test_unknown_path_is_a_json_404():
    response = APIClient().get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_admin_lists_events_with_filters_and_marks_unpriced(staff_client, client_with_key):
    customer = customer_create(external_id="acme")
    events = [
        event_payload(customer, id="priced-1"),
        event_payload(customer, id="unpriced-1", provider="x", model="unknown-model"),
    ]
    client_with_key.post("/v1/events", {"events": events}, format="json")

    listing = staff_client.get("/admin/metering/usageevent/")
    unpriced = staff_client.get("/admin/metering/usageevent/?unpriced=yes")
    found = staff_client.get("/admin/metering/usageevent/?q=priced-1")

    assert listing.status_code == 200
    assert b">priced-1</a>" in listing.content and b">unpriced-1</a>" in listing.content
    assert b">unpriced-1</a>" in unpriced.content and b">priced-1</a>" not in unpriced.content
    assert b">priced-1</a>" in found.content and b">unpriced-1</a>" not in found.content


def test_admin_events_are_read_only(staff_client):
    assert staff_client.get("/admin/metering/usageevent/add/").status_code == 403


@pytest.mark.parametrize(
    "page",
    [
        "/admin/metering/customer/",
        "/admin/metering/modelpriceoverride/",
        "/admin/metering/modelpriceoverride/add/",
        "/admin/rest_framework_api_key/apikey/",
        "/admin/outcomes/outcome/",
        "/admin/plans/plan/",
        "/admin/plans/planversion/",
        "/admin/plans/outcomeprice/",
        "/admin/plans/subscription/",
    ],
)
def test_admin_pages_open(staff_client, page):
    assert staff_client.get(page).status_code == 200


def test_admin_outcome_page_shows_its_attributed_calls_and_cost(staff_client, client_with_key):
    customer_create(external_id="acme")
    client_with_key.post(
        "/v1/outcomes", {"id": "o-1", "customer": "acme", "type": "resolution"}, format="json"
    )
    client_with_key.post(
        "/v1/events", event_payload("acme", outcome="o-1", cost="0.5"), format="json"
    )
    outcome = Outcome.objects.get()
    page = staff_client.get(f"/admin/outcomes/outcome/{outcome.pk}/change/")

    assert page.status_code == 200
    assert b"1 (0 unpriced)" in page.content and b"0.5" in page.content


def test_admin_plan_version_page_shows_its_prices(staff_client):
    version = plan_load("support-ai", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    page = staff_client.get(f"/admin/plans/planversion/{version.pk}/change/")
    assert page.status_code == 200 and b"resolution" in page.content


@pytest.mark.parametrize(
    ("accept", "indented"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/*", False),
        ("text/html, */*;q=0.8", False),
        ("application/json; indent=2", True),
    ],
)
def test_the_api_answers_json_to_every_accept_header_that_takes_it(
    client_with_key, accept, indented
):
    # The common headers skip DRF's media-type parsing (api/negotiation.py); the others
    # go through it: the answers are the same either way.
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = client_with_key.get("/v1/health", **headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["status"] == "ok"
    assert (b"\n" in response.content) == indented


def test_the_api_refuses_an_accept_header_it_cannot_answer(client_with_key):
    response = client_with_key.get("/v1/health", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert response.json()["errors"][0]["code"] == "not_acceptable"


@pytest.mark.parametrize(("format_", "status"), [("json", 200), ("csv", 404)])
def test_a_format_override_is_negotiated_as_drf_does(client_with_key, format_, status):
    response = client_with_key.get("/v1/health", {"format": format_})

    assert response.status_code == status


def test_a_served_worker_freezes_what_it_loaded_out_of_the_collectors_sight():
    """config/gunicorn.py: once a worker has loaded Django, its objects are frozen, so
    that a full collection does not walk them again (docs/performance.md)."""
    from config import gunicorn

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        gunicorn.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 10_000  # Django and payback, loaded
    finally:
        gc.unfreeze()
