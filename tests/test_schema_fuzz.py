"""Schemathesis against the OpenAPI schema, over real HTTP to a live server: every
operation, generated inputs valid and not; no 5xx, and every answer conforms to the
schema (documented status, content type, body).

Left out: `positive_data_acceptance`, since a schema-valid request may still name a
customer that does not exist or a timestamp older than the late-event window (a 404 or
400 is right there); and `negative_data_rejection`, since unknown query parameters are
ignored, as HTTP APIs do (unknown body fields are refused, tests/test_security.py)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework_api_key.models import APIKey
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.openapi import openapi_schema

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
