"""Schemathesis against the OpenAPI schema, over real HTTP to a live server: every
operation, generated inputs valid and not; no 5xx, and every answer conforms to the
schema (documented status, content type, body).

Left out: `positive_data_acceptance`, since a schema-valid request may still name a
customer that does not exist or a timestamp older than the late-event window (a 404 or
400 is right there); and `negative_data_rejection`, since unknown query parameters are
ignored, as HTTP APIs do (unknown body fields are refused, tests/test_security.py)."""

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework_api_key.models import APIKey
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.openapi import openapi_schema

schema = schemathesis.openapi.from_dict(openapi_schema())
# Made now, stored by the fixture: schemathesis asks for it while collecting the tests,
# before any database is there.
_KEY, _PREFIX, _HASHED_KEY = APIKey.objects.key_generator.generate()


@schema.auth()
class ApiKeyAuth:
    """The fixture's key, on every generated request that should carry one."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return _KEY

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Api-Key {data}"}


@pytest.fixture
def api_key_for_fuzzing(transactional_db):
    customer_create(external_id="acme")
    plan_load("support-ai", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    APIKey.objects.create(
        id=f"{_PREFIX}.{_HASHED_KEY}", prefix=_PREFIX, hashed_key=_HASHED_KEY, name="fuzz"
    )


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_schema(case, api_key_for_fuzzing, live_server):
    case.call_and_validate(
        base_url=live_server.url,
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )


# The hostile classes (issue 13), over every operation that takes a body: schemathesis
# generates each body, then one of these makes it hostile. Each must get a 4xx that the
# schema documents, never a 5xx.
hostile = schemathesis.openapi.from_dict(openapi_schema()).include(method=["POST", "PUT"])
hostile.auth()(ApiKeyAuth)
# Generated bodies only: the other phases (explicit examples, the coverage phase's
# deterministic cases) do not pass through the body hook below.
hostile.config.phases.update(phases=["fuzzing"])


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _replaced(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {key: _replaced(item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, leaf) for item in value]
    return leaf(value)


def _as_object(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    return {"body": body} if isinstance(body, str | int | float | list) else {}


NOT_UTF8 = b'{"id": "\xff\xfe", "customer": "\xc3("}'
HOSTILE_BODIES: dict[str, Callable[[Any], Any]] = {
    # A marker: before_call below sends NOT_UTF8's bytes in its place.
    "not UTF-8": lambda body: {"not UTF-8": True},
    "nested 40 deep": lambda body: {**_as_object(body), "deep": _nested(40)},
    "lone surrogates": lambda body: {
        **_replaced(_as_object(body), lambda v: "\ud800" if isinstance(v, str) else v),
        "\udfff": 1,
    },
    "numbers past 64 bits": lambda body: {
        **_replaced(
            _as_object(body), lambda v: 10**30 if isinstance(v, int) and v is not True else v
        ),
        "premium_seats": 2**63,
    },
}


@hostile.hook
def flatmap_body(context: object, body: Any) -> Any:
    return st.sampled_from(list(HOSTILE_BODIES.values())).map(lambda make: make(body))


@schemathesis.hook  # before_call hooks are global; this one acts on the marker only
def before_call(context: object, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if case.body == {"not UTF-8": True}:
        case.body = NOT_UTF8


def refused_as_the_client_s_fault(ctx: object, response: Any, case: schemathesis.Case) -> None:
    if response.request.method != case.method.upper():
        return  # schemathesis' own probes (another method: 405) are not the hostile body
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])


@pytest.mark.django_db(transaction=True)
@hostile.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_hostile_bodies_get_a_documented_4xx(case, api_key_for_fuzzing, live_server):
    case.call_and_validate(
        base_url=live_server.url,
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
        additional_checks=[refused_as_the_client_s_fault],
    )
