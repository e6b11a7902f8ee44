"""Fixtures on the real parts: PostgreSQL (DATABASE_URL, or the embedded server that
`make test` starts), the configured Celery broker (Redis in CI, kombu's filesystem
transport on a laptop) and a real Celery worker thread consuming from it."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from django.contrib.auth.models import User
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from config.celery import app as celery_app
from tests.support.polling import wait_for

# Django's live server listens with a backlog of 10: a test that opens 50 connections at
# once (the ingest races) could have the kernel reset some of them on a busy machine,
# which says nothing about payback (gunicorn, which serves it, listens with 2048).
ThreadedWSGIServer.request_queue_size = 128


@pytest.fixture
def api_key(db: None) -> str:
    _, key = APIKey.objects.create_key(name="tests")
    return key


@pytest.fixture
def client_with_key(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


@pytest.fixture
def expired_api_key(db: None) -> str:
    _, key = APIKey.objects.create_key(
        name="expired", expiry_date=timezone.now() - timedelta(minutes=1)
    )
    return key


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[None]:
    """A real worker (solo pool, in a thread of this process) on the real broker. Tests
    using it need committed data, hence transactional_db. The queue is emptied first:
    messages an earlier test sent and no worker took name rows of another database."""
    celery_app.control.purge()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


@pytest.fixture
def staff_client(client: Client, db: None) -> Client:
    User.objects.create_superuser("admin", "admin@example.test", "pw-admin-12345")
    client.force_login(User.objects.get(username="admin"))
    return client


@dataclass
class FakeStripe:
    """The localstripe server of a test session (tests/support/fake_stripe.py), with its shim's
    controls: faults on demand and a count of the API writes that reached it."""

    url: str

    def fail_next(
        self,
        *,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> None:
        body = {"status": status, "count": count, "retry_after": retry_after, "delay": delay}
        requests.post(f"{self.url}/_config/faults", json=body, timeout=5).raise_for_status()

    def writes(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_config/requests", timeout=5).json()


@pytest.fixture(scope="session")
def stripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripe]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("stripe") / "localstripe.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "support" / "fake_stripe.py"),
                "--port",
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{url}/_config/requests", timeout=1).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, what=f"localstripe to start (its log: {log})", timeout=10, every=0.1)
        yield FakeStripe(url)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def stripe(stripe_server: FakeStripe, settings: Any) -> Iterator[FakeStripe]:
    """Point payback's Stripe integration (the real `stripe` client) at localstripe."""
    from billing.stripe_sync import stripe_api

    settings.STRIPE_API_KEY = "sk_test_payback"
    settings.STRIPE_API_BASE = stripe_server.url
    settings.STRIPE_TIMEOUT_SECONDS = 2
    settings.STRIPE_REQUESTS_PER_SECOND = 0
    stripe_api._client.cache_clear()
    stripe_api._limiter.cache_clear()
    yield stripe_server
    stripe_api._client.cache_clear()
    stripe_api._limiter.cache_clear()


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in the (per-process) cache: each test starts at zero."""
    from django.core.cache import cache

    cache.clear()
    yield
