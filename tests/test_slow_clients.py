"""Slow and idle clients cost the API nothing: the API as `make run` serves it (gunicorn's
sync workers behind nginx, config/front.py), 50 connections that send nothing, half a
request line, half their headers or half their body, and a backend posting events
meanwhile at its unloaded speed.

Before: gunicorn alone, two connections that sent `POST /v1/events HTTP/1.1` and a Host
line held both workers until gunicorn's 60 s timeout (a health check waited 61.7 s).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from rest_framework_api_key.models import APIKey

from billing.stripe_sync.models import StripeWebhookDelivery
from config import front
from config.wsgi import client_address_from_proxy
from tests.metering.factories import customer_create
from tests.support.polling import wait_for
from tests.support.processes import database_url

SLOW_CONNECTIONS = 50
REQUESTS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(transactional_db, tmp_path_factory) -> Iterator[tuple[int, str]]:
    """payback's API behind nginx on a port of its own; yields (port, an API key)."""
    customer_create(external_id="acme")
    _, key = APIKey.objects.create_key(name="backend")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "API_KEY_RATE_LIMIT": "0",
        "GUNICORN_WORKERS": "2",
        "STRIPE_WEBHOOK_SECRETS": "whsec_test",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # A short folder: unix socket paths are limited to 107 bytes.
    folder = Path(tmp_path_factory.mktemp("front", numbered=True))
    processes = front.start(folder, listen=f"127.0.0.1:{port}", env=env)
    try:
        wait_for(lambda: _health(port) == 200, what="the API behind nginx", timeout=60)
        yield port, key
    finally:
        front.stop(processes)


def _health(port: int) -> int:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/v1/health")
        return connection.getresponse().status
    except OSError:
        return 0


def post_events(port: int, key: str, prefix: str, count: int) -> list[float]:
    """`count` single events from one kept-alive connection, as a backend posts them;
    each answer's wait in seconds, sorted."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    waits = []
    for n in range(count):
        body = json.dumps(
            {
                "id": f"{prefix}-{n}",
                "customer": "acme",
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 1000,
                "output_tokens": 200,
            }
        )
        began = time.perf_counter()
        connection.request(
            "POST",
            "/v1/events",
            body=body,
            headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        waits.append(time.perf_counter() - began)
        assert response.status == 200, response.status
    return sorted(waits)


def p99(waits: list[float]) -> float:
    return statistics.quantiles(waits, n=100)[98]


def slow_connections(port: int, key: str, count: int) -> list[socket.socket]:
    """Connections that never finish their request: nothing sent, half a request line,
    half the headers, and headers with half a body (to the ingest with a key, and to
    the Stripe webhook that needs none)."""
    starts = [
        b"",
        b"POST /v1/ev",
        b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        (
            f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {key}\r\n"
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id": '
        ).encode(),
        (
            b"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Stripe-Signature: t=1,v1=00\r\nContent-Length: 1000\r\n\r\n{"id": '
        ),
    ]
    opened = []
    for n in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(starts[n % len(starts)])
        opened.append(connection)
    return opened


def test_slow_and_idle_connections_do_not_slow_a_backend_posting_events(served):
    port, key = served
    post_events(port, key, "warm", 50)
    unloaded = post_events(port, key, "unloaded", REQUESTS)

    slow = slow_connections(port, key, SLOW_CONNECTIONS)
    try:
        loaded = post_events(port, key, "loaded", REQUESTS)
        # Every slow connection is still open: nginx holds them, and holds them alone.
        still_open = sum(_still_open(connection) for connection in slow)
    finally:
        for connection in slow:
            connection.close()

    assert still_open == SLOW_CONNECTIONS
    # Within 2x of the unloaded p99; 5 ms is the least this shared machine can promise.
    assert p99(loaded) <= 2 * max(p99(unloaded), 0.005), (p99(unloaded), p99(loaded))


def _still_open(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1) != b""  # data would be an answer: not held
    except BlockingIOError:
        return True  # nothing to read and not closed
    except OSError:
        return False


def test_nginx_refusals_answer_json_and_the_client_address_is_nginx_s_view(served):
    port, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/v1/events")
    connection.putheader("Content-Length", str(1 << 40))
    connection.endheaders()
    too_large = connection.getresponse()
    assert too_large.status == 413
    assert json.loads(too_large.read())["errors"][0]["code"] == "body_too_large"

    # A client's own X-Forwarded-For is replaced by nginx: the refusal is recorded
    # against the address nginx saw (the failed-key and webhook limits use the same).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(
        "POST",
        "/v1/webhooks/stripe",
        body=b"{}",
        headers={"X-Forwarded-For": "203.0.113.9", "Stripe-Signature": "t=1,v1=00"},
    )
    assert connection.getresponse().status == 400
    assert StripeWebhookDelivery.objects.get().remote_address == "127.0.0.1"


@pytest.mark.parametrize(
    ("peer", "forwarded", "seen"),
    [
        ("", "198.51.100.7", "198.51.100.7"),  # the proxy on the unix socket
        ("10.0.0.5", "198.51.100.7", "198.51.100.7"),  # a listed proxy
        ("10.0.0.5", "203.0.113.1, 198.51.100.7", "198.51.100.7"),  # its own entry last
        ("192.0.2.1", "198.51.100.7", "192.0.2.1"),  # anyone else: their own address
        ("", "", ""),  # no header: no address, never the header's absence trusted
    ],
)
def test_the_client_address_comes_from_a_trusted_proxy_only(peer, forwarded, seen):
    seen_by_app = {}

    def app(environ, start_response):
        seen_by_app["address"] = environ["REMOTE_ADDR"]
        return []

    wrapped = client_address_from_proxy(app, ["10.0.0.0/8"])
    wrapped({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}, lambda *a: None)

    assert seen_by_app["address"] == seen


def test_a_front_that_cannot_start_nginx_leaves_no_gunicorn_running(tmp_path, monkeypatch):
    """Without nginx the front refuses to start and leaves nothing behind (it used to
    start gunicorn first and leave it running when nginx was missing)."""

    def missing() -> str:
        raise RuntimeError("nginx is not installed")

    monkeypatch.setattr(front, "nginx_binary", missing)
    before = {child.pid for child in psutil.Process().children(recursive=True)}

    with pytest.raises(RuntimeError, match="nginx is not installed"):
        front.start(tmp_path, listen="127.0.0.1:1")

    started = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in before and child.is_running()
    ]
    assert started == []
    assert not (tmp_path / "api.sock").exists()
