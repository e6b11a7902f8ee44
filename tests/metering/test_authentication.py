"""Every /v1 endpoint but health needs a valid API key; refusals are JSON."""

import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db

PROTECTED = [
    ("post", "/v1/events"),
    ("get", "/v1/customers/acme"),
    ("put", "/v1/customers/acme"),
    ("get", "/v1/customers/acme/usage"),
    ("get", "/v1/schema"),
]


def call(client, method, path):
    if method in {"post", "put"}:
        return getattr(client, method)(path, event_payload("acme"), format="json")
    return getattr(client, method)(path, HTTP_ACCEPT="application/json")


def assert_unauthorized(response, code):
    assert response.status_code == 401, response.content
    assert json.loads(response.content)["errors"][0]["code"] == code
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_key_is_401(method, path):
    customer_create(external_id="acme")
    assert_unauthorized(call(APIClient(), method, path), "not_authenticated")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_unknown_key_is_401(method, path, api_key):
    customer_create(external_id="acme")
    client = APIClient()
    prefix = api_key.split(".")[0]
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.not-the-secret")
    assert_unauthorized(call(client, method, path), "invalid_api_key")


def test_revoked_key_is_401(api_key):
    customer_create(external_id="acme")
    APIKey.objects.update(revoked=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert_unauthorized(call(client, "post", "/v1/events"), "revoked_api_key")


def test_a_key_revoked_after_use_is_refused_once_the_cache_window_passes(api_key, settings):
    customer_create(external_id="acme")
    settings.API_KEY_CACHE_SECONDS = 0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert client.get("/v1/customers/acme").status_code == 200

    APIKey.objects.update(revoked=True)

    assert_unauthorized(client.get("/v1/customers/acme"), "revoked_api_key")


def test_a_verified_key_is_not_looked_up_again_within_the_cache_window(
    api_key, settings, django_assert_num_queries
):
    customer_create(external_id="acme")
    settings.API_KEY_CACHE_SECONDS = 60
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    client.get("/v1/customers/acme")

    with django_assert_num_queries(2):  # the customer and its plan, not the key
        assert client.get("/v1/customers/acme").status_code == 200


def test_expired_key_is_401(expired_api_key):
    customer_create(external_id="acme")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {expired_api_key}")
    assert_unauthorized(call(client, "post", "/v1/events"), "expired_api_key")


def test_other_authorization_scheme_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer abc")
    assert_unauthorized(call(client, "get", "/v1/customers/acme"), "not_authenticated")


def test_health_needs_no_key():
    assert APIClient().get("/v1/health").status_code == 200


def test_keys_are_stored_hashed_with_a_visible_prefix(api_key):
    stored = APIKey.objects.get()
    prefix, secret = api_key.split(".")
    assert stored.prefix == prefix
    assert secret not in stored.hashed_key
    assert stored.hashed_key.startswith("sha512$$")


def test_create_api_key_command_prints_a_working_key(capsys):
    customer_create(external_id="acme")
    call_command("create_api_key", "support backend", "--expires-in-days", "30")
    key = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    assert client.get("/v1/customers/acme").status_code == 200
    assert APIKey.objects.get(name="support backend").expiry_date is not None
