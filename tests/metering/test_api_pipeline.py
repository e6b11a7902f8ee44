"""The API is served by a pipeline of its own (config/pipeline.py): API_MIDDLEWARE, past
the admin's middleware (sessions, CSRF, users, messages, frame options, the audit log's
actor, login lockout, static files). These tests hold it to the admin's full chain: the
same requests to POST /v1/events, sent through each, get the same answers and leave the
same rows."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from metering import authentication
from metering.models import UsageEvent
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db

# The headers an answer is compared on: the rest (Date, Vary, Allow) belong to the layer.
COMPARED_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After", "X-Content-Type-Options")


def _keys() -> dict[str, str]:
    _, good = APIKey.objects.create_key(name="good")
    _, revoked = APIKey.objects.create_key(name="revoked", revoked=True)
    _, expired = APIKey.objects.create_key(
        name="expired", expiry_date=timezone.now() - timedelta(minutes=1)
    )
    return {"good": good, "revoked": revoked, "expired": expired, "unknown": "nope.nope"}


def _script() -> list[tuple[str, dict[str, str], bytes | str]]:
    """(key name, extra headers, body) per request, in order: fresh and repeated events,
    every kind of bad input the endpoint refuses."""
    event = event_payload("acme", id="e-1")
    as_json = json.dumps
    return [
        ("good", {}, as_json(event)),
        ("good", {}, as_json(event)),  # duplicate
        ("good", {}, as_json({**event, "input_tokens": 7})),  # conflict
        ("good", {}, as_json({"events": [event_payload("acme", id=f"b-{n}") for n in range(30)]})),
        ("good", {}, as_json({"events": [event, {**event, "id": "e-2", "input_tokens": -1}]})),
        ("good", {}, as_json(event_payload("nobody", id="e-3"))),
        ("good", {}, as_json({**event, "id": "e-4", "model": "gpt\u00004o"})),
        ("good", {}, as_json({**event, "id": "e-5", "colour": "red"})),
        ("good", {}, '{"id": "e-6",'),
        ("good", {}, "[]"),
        ("good", {"CONTENT_TYPE": "text/plain"}, as_json(event)),
        ("good", {}, as_json({"events": [event] * 1001})),  # over METERING_MAX_BATCH
        ("good", {}, " " * (10 * 1024 * 1024 + 1)),  # over API_MAX_BODY_BYTES
        ("none", {}, as_json(event)),
        ("unknown", {}, as_json(event)),
        ("revoked", {}, as_json(event)),
        ("expired", {}, as_json(event)),
        ("good", {"HTTP_HOST": "evil.example"}, as_json(event)),
    ]


def _answers(client_for: Callable[[str], APIClient]) -> list[Any]:
    answers = []
    for key_name, headers, body in _script():
        response = client_for(key_name).generic(
            "POST",
            "/v1/events",
            body,
            content_type=headers.get("CONTENT_TYPE", "application/json"),
            **{name: value for name, value in headers.items() if name != "CONTENT_TYPE"},
        )
        is_json = response.get("Content-Type") == "application/json"
        answers.append(
            (
                response.status_code,
                json.loads(response.content) if is_json else response.content,
                {name: response.get(name) for name in COMPARED_HEADERS},
                "X-Request-ID" in response,
            )
        )
    return answers


def _stored() -> list[tuple[Any, ...]]:
    return list(
        UsageEvent.objects.order_by("event_id").values_list(
            "event_id", "customer__external_id", "input_tokens", "cost", "cost_source"
        )
    )


def _clients(keys: dict[str, str]) -> Callable[[str], APIClient]:
    clients: dict[str, APIClient] = {}

    def client_for(key_name: str) -> APIClient:
        if key_name not in clients:  # made here, so that it loads the settings in force
            clients[key_name] = APIClient()
            if key_name != "none":
                clients[key_name].credentials(HTTP_AUTHORIZATION=f"Api-Key {keys[key_name]}")
        return clients[key_name]

    return client_for


# No path is the API's: every request goes down the admin's full chain.
FULL_CHAIN = {"API_PATH_PREFIX": "/no-such-prefix/"}


def _run(keys: dict[str, str], *, hot: bool) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The script from a clean slate (no rows, no cached keys, no rate counters), through
    the API's pipeline (`hot`) or the admin's full chain; rolled back afterwards."""
    cache.clear()
    authentication._recently_verified.clear()
    with transaction.atomic():
        savepoint = transaction.savepoint()
        with override_settings(**({} if hot else FULL_CHAIN)):
            answers = _answers(_clients(keys))
        stored = _stored()
        transaction.savepoint_rollback(savepoint)
    return answers, stored


class AdminChainMarker:
    """A middleware for the admin's chain in a test: it marks the answers it sees."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        response["X-Admin-Chain"] = "passed"
        return response


@override_settings(
    MIDDLEWARE=[*settings.MIDDLEWARE, "tests.metering.test_api_pipeline.AdminChainMarker"]
)
def test_the_api_takes_its_own_pipeline_and_the_admin_the_full_chain(api_key, staff_client):
    customer_create(external_id="acme")
    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key}")

    hot = client.post("/v1/events", event_payload("acme", id="e-1"), format="json")
    with override_settings(**FULL_CHAIN):
        through_drf = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key}").post(
            "/v1/events", event_payload("acme", id="e-2"), format="json"
        )
    get = client.get("/v1/events")
    admin = staff_client.get("/admin/?all")

    # The marker is a middleware of the admin's chain only.
    assert hot.status_code == through_drf.status_code == admin.status_code == 200
    assert "X-Admin-Chain" not in hot
    assert through_drf["X-Admin-Chain"] == admin["X-Admin-Chain"] == "passed"
    assert hot["Allow"] == through_drf["Allow"] == "POST, OPTIONS"  # one view, DRF's
    assert (get.status_code, get.json()["errors"][0]["code"]) == (405, "method_not_allowed")


def test_the_api_pipeline_answers_every_request_as_the_full_chain_does():
    customer_create(external_id="acme")
    keys = _keys()

    hot_answers, hot_rows = _run(keys, hot=True)
    drf_answers, drf_rows = _run(keys, hot=False)

    statuses = [answer[0] for answer in hot_answers]
    assert statuses == [200, 200, 200, 200, 400, 400, 400, 400, 400, 400, 415, 400, 413,
                        401, 401, 401, 401, 400]  # fmt: skip
    assert hot_answers[0][1] == {"accepted": 1, "duplicates": 0, "conflicts": []}
    assert hot_answers[2][1] == {"accepted": 0, "duplicates": 0, "conflicts": ["e-1"]}
    assert hot_answers[13][2]["WWW-Authenticate"] == "Api-Key"
    for number, (hot, drf) in enumerate(zip(hot_answers, drf_answers, strict=True)):
        assert hot == drf, f"request {number} of the script"
    assert len(hot_rows) == 31
    assert hot_rows == drf_rows


@pytest.mark.parametrize("hot", [True, False], ids=["api pipeline", "full chain"])
def test_over_the_key_rate_both_answer_429_with_retry_after(api_key, hot, settings):
    """Alone, because the wait depends on the clock: its header is compared in range."""
    settings.API_KEY_RATE_LIMIT = "2/h"
    if not hot:
        settings.API_PATH_PREFIX = FULL_CHAIN["API_PATH_PREFIX"]
    customer_create(external_id="acme")
    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key}")

    answers = [
        client.post("/v1/events", event_payload("acme", id=f"e-{n}"), format="json")
        for n in range(3)
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json()["errors"][0]["code"] == "throttled"
    assert 1 <= int(answers[2]["Retry-After"]) <= 3600
    assert UsageEvent.objects.count() == 2


@pytest.mark.parametrize("hot", [True, False], ids=["api pipeline", "full chain"])
def test_repeated_failed_keys_are_throttled_on_both(hot, settings, db):
    settings.API_AUTH_FAILURE_LIMIT = "2/h"
    if not hot:
        settings.API_PATH_PREFIX = FULL_CHAIN["API_PATH_PREFIX"]
    client = APIClient(HTTP_AUTHORIZATION="Api-Key nope.nope")

    statuses = [
        client.post("/v1/events", event_payload("acme", id="e-1"), format="json").status_code
        for _ in range(3)
    ]

    assert statuses == [401, 401, 429]
