"""PUT and GET /v1/customers/{external_id}."""

import pytest

from metering.models import Customer

pytestmark = pytest.mark.django_db


def test_put_creates_a_customer(client_with_key):
    response = client_with_key.put(
        "/v1/customers/acme",
        {"name": "Acme", "email": "billing@acme.test", "currency": "eur", "metadata": {"crm": 7}},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["external_id"] == "acme"
    assert body["currency"] == "EUR"
    assert body["metadata"] == {"crm": 7}
    assert Customer.objects.get().email == "billing@acme.test"


def test_put_again_updates_only_the_fields_given(client_with_key):
    client_with_key.put("/v1/customers/acme", {"name": "Acme", "currency": "USD"}, format="json")

    response = client_with_key.put("/v1/customers/acme", {"name": "Acme Inc."}, format="json")

    assert response.status_code == 200
    customer = Customer.objects.get()
    assert (customer.name, customer.currency) == ("Acme Inc.", "USD")


def test_put_is_idempotent(client_with_key):
    body = {"name": "Acme", "currency": "USD"}
    client_with_key.put("/v1/customers/acme", body, format="json")
    client_with_key.put("/v1/customers/acme", body, format="json")
    assert Customer.objects.count() == 1


def test_get_returns_the_customer(client_with_key):
    client_with_key.put("/v1/customers/acme", {"name": "Acme"}, format="json")

    response = client_with_key.get("/v1/customers/acme")

    assert response.status_code == 200
    assert response.json()["name"] == "Acme"


def test_get_unknown_customer_is_404_json(client_with_key):
    response = client_with_key.get("/v1/customers/nobody")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currency": "EURO"}, "currency"),
        ({"email": "not-an-email"}, "email"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": {"x": "y" * 9000}}, "metadata"),
        ({"name": "n" * 201}, "name"),
    ],
)
def test_bad_customer_fields_are_refused_and_nothing_is_written(client_with_key, body, field):
    response = client_with_key.put("/v1/customers/acme", body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Customer.objects.exists()


def test_put_needs_json(client_with_key):
    response = client_with_key.put(
        "/v1/customers/acme", "name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


def test_put_with_malformed_json_is_400(client_with_key):
    response = client_with_key.put("/v1/customers/acme", b"{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"
