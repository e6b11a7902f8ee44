"""Faults on the real parts: the database taken away in the middle of ingest (a TCP proxy
in front of the real PostgreSQL cuts every connection)."""

import pytest
from django.db import connection

from metering.models import UsageEvent
from tests.faults import TcpProxy
from tests.metering.factories import customer_create, event_payload


@pytest.fixture
def database_through_proxy(transactional_db):
    """Point this process's database connection at a proxy to the real server."""
    settings_dict = connection.settings_dict
    saved = settings_dict["HOST"], settings_dict["PORT"]
    proxy = TcpProxy(saved[0] or "127.0.0.1", int(saved[1] or 5432))
    proxy.start()
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", proxy.port
    try:
        yield proxy
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = saved
        proxy.stop()


def test_database_down_during_ingest_is_a_503_and_a_retry_stores_each_event_once(
    database_through_proxy, client_with_key
):
    customer_create(external_id="acme")
    first, second = event_payload("acme", id="e-1"), event_payload("acme", id="e-2")
    assert client_with_key.post("/v1/events", first, format="json").json()["accepted"] == 1

    database_through_proxy.stop()
    down = client_with_key.post("/v1/events", second, format="json")

    assert down.status_code == 503
    assert down.json()["errors"][0]["code"] == "database_unavailable"
    assert down["Retry-After"] == "5"

    database_through_proxy.start()
    retried = client_with_key.post("/v1/events", {"events": [first, second]}, format="json")

    assert retried.status_code == 200
    assert retried.json() == {"accepted": 1, "duplicates": 1, "conflicts": []}
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == ["e-1", "e-2"]
