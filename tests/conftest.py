"""Fixtures on the real parts: PostgreSQL (DATABASE_URL, or the embedded server that
`make test` starts), the configured Celery broker (Redis in CI, kombu's filesystem
transport on a laptop) and a real Celery worker thread consuming from it."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from config.celery import app as celery_app


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
    using it need committed data, hence transactional_db."""
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


@pytest.fixture
def staff_client(client: Client, db: None) -> Client:
    User.objects.create_superuser("admin", "admin@example.test", "pw-admin-12345")
    client.login(username="admin", password="pw-admin-12345")
    return client
