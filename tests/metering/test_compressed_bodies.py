"""Request bodies sent with `Content-Encoding: gzip` (api/middleware.py): accepted on every
API endpoint, advertised on every API answer (RFC 7694's `Accept-Encoding`), held to the
body limit once inflated, and refused with a JSON error when they cannot be read."""

import gzip
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from metering.models import UsageEvent
from outcomes.models import Outcome
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


def _post(client: APIClient, path: str, body: bytes, **headers: str) -> Any:
    return client.post(path, data=body, content_type="application/json", **headers)


def test_a_gzip_batch_of_events_is_stored_as_if_sent_plain(client_with_key: APIClient) -> None:
    customer_create(external_id="acme")
    batch = {"events": [event_payload("acme", id=f"z-{n}") for n in range(300)]}
    body = gzip.compress(json.dumps(batch).encode())

    answer = _post(client_with_key, "/v1/events", body, HTTP_CONTENT_ENCODING="gzip")
    again = _post(client_with_key, "/v1/events", body, HTTP_CONTENT_ENCODING="gzip")

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 300, "duplicates": 0, "conflicts": []}
    assert again.json() == {"accepted": 0, "duplicates": 300, "conflicts": []}
    assert UsageEvent.objects.count() == 300


def test_a_gzip_body_reaches_views_parsed_by_drf(client_with_key: APIClient) -> None:
    """Outcomes are read by msgspec too; customers by DRF's parser, from the stream."""
    body = gzip.compress(json.dumps({"name": "Acme Ltd"}).encode())

    answer = client_with_key.put(
        "/v1/customers/acme", data=body, content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )  # fmt: skip
    outcome = gzip.compress(
        json.dumps({"id": "o-1", "customer": "acme", "type": "resolution"}).encode()
    )
    recorded = _post(client_with_key, "/v1/outcomes", outcome, HTTP_CONTENT_ENCODING="gzip")

    assert answer.status_code == 201, answer.content
    assert answer.json()["name"] == "Acme Ltd"
    assert recorded.status_code == 200, recorded.content
    assert Outcome.objects.get(external_id="o-1").type == "resolution"


def test_every_api_answer_advertises_gzip(client_with_key: APIClient) -> None:
    customer_create(external_id="acme")

    plain = _post(client_with_key, "/v1/events", json.dumps(event_payload("acme")).encode())
    refused = _post(client_with_key, "/v1/events", b"{}")
    read = client_with_key.get("/v1/customers/acme")

    for answer in (plain, refused, read):
        assert answer["Accept-Encoding"] == "gzip"


def test_another_encoding_is_refused_with_415_naming_gzip(client_with_key: APIClient) -> None:
    customer_create(external_id="acme")
    body = json.dumps(event_payload("acme")).encode()

    answer = _post(client_with_key, "/v1/events", body, HTTP_CONTENT_ENCODING="br")

    assert answer.status_code == 415
    assert answer["Accept-Encoding"] == "gzip"
    assert answer.json()["errors"][0]["code"] == "unsupported_content_encoding"
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"not gzip at all",
        gzip.compress(b'{"id": "x"}')[:-6],  # cut short: no trailer
        gzip.compress(b"{}") + b"trailing bytes",
    ],
    ids=["not-gzip", "truncated", "trailing-garbage"],
)
def test_a_body_that_is_not_one_gzip_stream_is_a_400(
    client_with_key: APIClient, body: bytes
) -> None:
    answer = _post(client_with_key, "/v1/events", body, HTTP_CONTENT_ENCODING="gzip")

    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalid_gzip"


def test_a_body_inflating_past_the_limit_is_a_413(
    client_with_key: APIClient, settings: Any
) -> None:
    settings.API_MAX_BODY_BYTES = 10_000  # read when the client's first request builds it
    bomb = gzip.compress(b" " * 10_001)  # 40-odd bytes sent

    answer = _post(client_with_key, "/v1/events", bomb, HTTP_CONTENT_ENCODING="gzip")
    at_limit = gzip.compress(b" " * 9_998 + b"{}")
    fits = _post(client_with_key, "/v1/events", at_limit, HTTP_CONTENT_ENCODING="gzip")

    assert answer.status_code == 413
    assert answer.json()["errors"][0]["code"] == "body_too_large"
    assert fits.status_code == 400  # inflated and read: `{}` is not an event
    assert fits.json()["errors"][0]["code"] != "body_too_large"
