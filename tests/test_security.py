"""Rate limits, stored secrets, mass assignment, production settings: what a hostile
client meets."""

import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from api.throttling import window_hit
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)


def keyed_client(name: str = "backend") -> APIClient:
    _, key = APIKey.objects.create_key(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_a_key_over_its_rate_gets_429_with_retry_after(settings):
    settings.API_KEY_RATE_LIMIT = "3/m"
    customer_create(external_id="acme")
    busy, other = keyed_client("busy"), keyed_client("other")

    statuses = [busy.get("/v1/customers/acme").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    refused = busy.get("/v1/customers/acme")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["errors"][0]["code"] == "throttled"
    assert other.get("/v1/customers/acme").status_code == 200  # per key


@pytest.mark.parametrize(
    "backend",
    [
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/3",
        },
    ],
    ids=["per-process", "redis"],
)
def test_a_rate_window_counts_every_hit_and_starts_over_when_its_counter_expires(settings, backend):
    settings.CACHES = {"default": backend}
    ident = uuid.uuid4().hex

    assert [window_hit("key", ident, "3/h") for _ in range(3)] == [None, None, None]
    assert window_hit("key", ident, "3/h") is not None  # the 4th in the hour
    cache.delete(f"rl:key:{ident}:{int(time.time() // 3600)}")  # as when it expires
    assert window_hit("key", ident, "3/h") is None


def test_repeated_failed_keys_get_429_even_for_a_good_key_then(settings):
    settings.API_AUTH_FAILURE_LIMIT = "3/m"
    settings.API_KEY_CACHE_SECONDS = 0
    customer_create(external_id="acme")
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.guess")

    statuses = [guesser.get("/v1/customers/acme").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
    refused = keyed_client().get("/v1/customers/acme")  # same address
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1


def test_only_hashes_of_api_keys_are_stored():
    api_key, key = APIKey.objects.create_key(name="backend")
    secret = key.split(".", 1)[1]

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM rest_framework_api_key_apikey")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)

    assert key not in stored
    assert secret not in stored
    assert api_key.prefix in stored  # the visible part only
    assert api_key.is_valid(key)


def test_a_body_over_the_limit_gets_413_before_it_is_read(settings, client_with_key):
    settings.API_MAX_BODY_BYTES = 1000
    customer_create(external_id="acme")
    events = [event_payload("acme", properties={"pad": "x" * 2000})]

    response = client_with_key.post("/v1/events", {"events": events}, format="json")

    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "body_too_large"


def test_a_customer_update_refuses_fields_it_does_not_own(client_with_key):
    customer_create(external_id="acme", name="Acme")

    response = client_with_key.put(
        "/v1/customers/acme",
        {"name": "Evil", "external_id": "other", "created_at": "2020-01-01T00:00:00Z", "total": 0},
        format="json",
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert sorted(e["field"] for e in errors) == ["created_at", "external_id", "total"]
    assert {e["code"] for e in errors} == {"unknown_field"}
    assert client_with_key.get("/v1/customers/acme").json()["name"] == "Acme"  # unchanged


@pytest.mark.parametrize(
    ("path", "item"),
    [
        ("/v1/events", {"cost_source": "explicit"}),
        ("/v1/events", {"received_at": "2020-01-01T00:00:00Z"}),
        ("/v1/events", {"price_version": "free"}),
        ("/v1/outcomes", {"succeeded_recorded_at": "2020-01-01T00:00:00Z"}),
        ("/v1/outcomes", {"reversed_at": "2020-01-01T00:00:00Z"}),
    ],
)
def test_facts_refuse_fields_the_server_sets(client_with_key, path, item):
    customer_create(external_id="acme")
    body = (
        event_payload("acme", **item)
        if path == "/v1/events"
        else {"id": "o-1", "customer": "acme", "type": "resolution", **item}
    )

    response = client_with_key.post(path, body, format="json")

    assert response.status_code == 400
    assert next(iter(item)) in response.content.decode()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_invoices_cannot_be_written_through_the_api(client_with_key, method):
    customer_create(external_id="acme")

    response = getattr(client_with_key, method)(
        "/v1/customers/acme/invoices", {"total": 0, "status": "paid"}, format="json"
    )

    assert response.status_code == 405


def production_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parent.parent,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.django.production",
            "DEBUG": "true",  # production settings ignore it
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = production_check(SECRET_KEY=secrets.token_urlsafe(60))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.django.production"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_lists_are_paged_with_a_limit(client_with_key):
    for code in ("a", "b", "c"):
        plan_load(code, base_fee="1")

    first = client_with_key.get("/v1/plans", {"limit": 2})

    assert [plan["code"] for plan in first.json()] == ["a", "b"]
    assert first["X-Total-Count"] == "3"
    assert first["Link"].endswith('/v1/plans?limit=2&offset=2>; rel="next"')
    last = client_with_key.get("/v1/plans", {"limit": 2, "offset": 2})
    assert [plan["code"] for plan in last.json()] == ["c"]
    assert "Link" not in last


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/plans", "0"),
        ("/v1/plans", "101"),
        ("/v1/plans", "ten"),
        ("/v1/analytics/margins", "1001"),
    ],
)
def test_a_page_over_the_limit_is_refused(client_with_key, path, limit):
    response = client_with_key.get(path, {"limit": limit})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "limit"


def test_invoices_are_paged(client_with_key):
    version = plan_load("p", base_fee="1")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(
        customer=customer, plan=version.plan, started_at=datetime(2026, 7, 1, tzinfo=UTC)
    )
    for month in (7, 8, 9):
        period_close(customer_id=customer.pk, period_start=datetime(2026, month, 1, tzinfo=UTC))

    response = client_with_key.get("/v1/customers/acme/invoices", {"limit": 1, "offset": 1})

    assert [invoice["period_start"][:7] for invoice in response.json()] == ["2026-08"]
    assert response["X-Total-Count"] == "3"
    assert "offset=2" in response["Link"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/v1/events", {"id": "e\u0000", "customer": "acme"}, "id"),
        ("post", "/v1/events", {"id": "e", "customer": "acme", "user": "\u0000"}, "user"),
        (
            "post",
            "/v1/events",
            {"id": "e", "customer": "acme", "properties": {"k": "\u0000"}},
            "properties",
        ),
        ("post", "/v1/outcomes", {"id": "o\u0000", "customer": "acme", "type": "t"}, "id"),
        ("put", "/v1/customers/acme", {"metadata": {"k\u0000": 1}}, "metadata"),
        ("put", "/v1/customers/acme", {"name": "A\u0000"}, "name"),
    ],
)
def test_nul_characters_are_refused_naming_the_field(client_with_key, method, path, body, field):
    """PostgreSQL cannot store U+0000: found by schemathesis as a 500."""
    customer_create(external_id="acme")

    response = getattr(client_with_key, method)(path, body, format="json")

    assert response.status_code == 400, response.content
    assert field in [error.get("field") for error in response.json()["errors"]]


def test_nul_characters_in_a_path_or_query_are_refused(client_with_key):
    assert client_with_key.get("/v1/customers/a%00b").status_code == 400
    assert client_with_key.get("/v1/analytics/margins", {"customer": "a\u0000"}).status_code == 400
