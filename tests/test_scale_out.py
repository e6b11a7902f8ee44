"""Scale out, proven here: two hosts (network namespaces, tests/support/hosts.py), each running
the API (gunicorn) and a Celery worker, on one PostgreSQL, Celery on the local RabbitMQ,
pushing to the fake Stripe server; the hosts reach all three only over their links.

- Ingest exactly once: two backends post every event, each starting at another host and
  retrying at the other when a request fails, while an API worker on the first host is
  killed (SIGKILL); every event is stored once and acknowledged as accepted once.
- One invoice per period and one Stripe invoice each: every customer's month is closed
  by tasks on the two hosts' workers, each push sent to Stripe after its close, while
  first one host's worker and then the other's is killed whole (parent and pool, as
  when a machine dies) and started again; RabbitMQ hands their unacknowledged tasks to
  the workers left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe as stripe_sdk
from django.db import connection
from kombu import Connection
from rest_framework_api_key.models import APIKey

from billing.invoicing.models import Invoice
from billing.invoicing.tasks import close_period
from billing.plans.models import Subscription
from billing.stripe_sync.models import StripeCustomer
from config import front
from metering.models import UsageEvent
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.faults import publishing_to
from tests.support.hosts import Host
from tests.support.polling import wait_for
from tests.support.processes import closable_month, json_request

pytestmark = pytest.mark.django_db(transaction=True)

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
CUSTOMERS = 40
EVENTS = 400
BATCH = 20
MONTH_START, LAST_DAY, MONTH_END = closable_month()


@dataclass
class Cluster:
    hosts: list[Host]
    queue: str
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    logs: Path = Path()

    def start_worker(self, host: Host) -> None:
        celery = Path(sys.executable).parent / "celery"
        host.start(
            "worker",
            [str(celery), "-A", "config", "worker", "--queues", self.queue, "--concurrency",
             "2", "--hostname", f"{host.name}-{uuid.uuid4().hex[:4]}@%h", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            env=self.env[host.name],
            log=self.logs / f"{host.name}-worker.log",
        )  # fmt: skip


def _database_target() -> tuple[str, int]:
    """Where the test database's server listens: a host, or libpq's unix socket folder."""
    settings_dict = connection.settings_dict
    host = settings_dict["HOST"] or settings_dict["OPTIONS"].get("host") or "127.0.0.1"
    return host, int(settings_dict["PORT"] or 5432)


@pytest.fixture
def cluster(stripe_server, tmp_path) -> Iterator[Cluster]:
    with contextlib.closing(Connection(RABBITMQ, connect_timeout=5)) as rabbit:
        rabbit.ensure_connection(max_retries=3)  # RabbitMQ runs here (make test starts it)
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    hosts: list[Host] = []
    cluster = Cluster(hosts=hosts, queue=queue, logs=tmp_path)
    try:
        for index in (1, 2):
            host = Host(index)
            hosts.append(host)
            db, rabbit_address = host.reach(*_database_target()), host.reach("127.0.0.1", 5672)
            stripe_address = host.reach("127.0.0.1", int(stripe_server.url.rsplit(":", 1)[1]))
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.django.base",
                "DATABASE_URL": f"postgres://postgres@{db}/{connection.settings_dict['NAME']}",
                "CELERY_BROKER_URL": f"amqp://guest:guest@{rabbit_address}//",
                "CELERY_TASK_DEFAULT_QUEUE": queue,
                "STRIPE_API_KEY": "sk_test_payback",
                "STRIPE_API_BASE": f"http://{stripe_address}",
                "STRIPE_REQUESTS_PER_SECOND": "0",
                "ALLOWED_HOSTS": host.inside,
                "API_KEY_RATE_LIMIT": "0",
                "GUNICORN_WORKERS": "2",
                "LOG_FORMAT": "plain",
            }
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            cluster.env[host.name] = env
            host.start(
                "api",
                front.gunicorn_command(f"{host.inside}:8000"),
                env=env,
                log=tmp_path / f"{host.name}-api.log",
            )
            cluster.start_worker(host)
        for host in hosts:
            wait_for(lambda host=host: _healthy(host), what=f"the API on {host.name}")
        yield cluster
    finally:
        for host in hosts:
            host.remove()
        with contextlib.closing(Connection(RABBITMQ, connect_timeout=5)) as rabbit:
            with contextlib.suppress(Exception):
                rabbit.default_channel.queue_delete(queue)
        for log in sorted(tmp_path.glob("*.log")):  # for a failure's report
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def _healthy(host: Host) -> bool:
    try:
        return _request(host, "GET", "/v1/health")[0] == 200
    except OSError:
        return False


def _request(host: Host, method: str, path: str, body: Any = None, key: str = "") -> Any:
    return json_request(host.inside, 8000, method, path, body, key=key)


def _events() -> list[dict[str, Any]]:
    return [
        {"id": f"call-{n}", "customer": f"c-{n % CUSTOMERS}", "provider": "openai",
         "model": "gpt-4o", "input_tokens": 1000 + n, "output_tokens": 100,
         "timestamp": (LAST_DAY - timedelta(minutes=n)).isoformat()}
        for n in range(EVENTS)
    ]  # fmt: skip


def _gunicorn_workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def test_two_hosts_ingest_once_and_invoice_once_while_their_workers_are_killed(cluster, stripe):
    first, second = cluster.hosts
    version = plan_load("scale", base_fee="10")
    customers = [customer_create(external_id=f"c-{n}") for n in range(CUSTOMERS)]
    for customer in customers:
        Subscription.objects.create(customer=customer, plan=version.plan, started_at=MONTH_START)
    _, key = APIKey.objects.create_key(name="scale")

    # --- ingest: every batch from two backends, one starting at each host -------------
    events = _events()
    batches = [events[i : i + BATCH] for i in range(0, EVENTS, BATCH)]
    accepted = [0, 0]

    def backend(number: int) -> None:
        for batch in batches:
            for attempt in range(10):
                host = cluster.hosts[(number + attempt) % 2]
                try:
                    status, answer = _request(host, "POST", "/v1/events", {"events": batch}, key)
                except OSError:
                    continue  # the worker serving it was killed: the other host
                if status == 200:
                    accepted[number] += answer["accepted"]
                    break
            else:
                raise AssertionError(f"a batch was never acknowledged ({status}, {answer})")

    backends = [threading.Thread(target=backend, args=(n,)) for n in (0, 1)]
    for thread in backends:
        thread.start()
    time.sleep(0.3)
    os.kill(_gunicorn_workers(first.processes["api"].pid)[0], signal.SIGKILL)
    for thread in backends:
        thread.join(timeout=120)

    assert UsageEvent.objects.count() == EVENTS
    assert sum(accepted) == EVENTS  # each event accepted once, a duplicate every other time

    # --- close: every customer's month, by tasks on both hosts' workers ----------------
    with publishing_to(RABBITMQ):
        for customer in customers:
            close_period.apply_async(
                (customer.pk, MONTH_START.isoformat()), queue=cluster.queue, retry=False
            )
    for host in (first, second):
        time.sleep(0.5)
        host.kill("worker")  # mid-work: its unacknowledged tasks go back to RabbitMQ
        time.sleep(1.0)
        cluster.start_worker(host)

    def all_pushed() -> bool:
        return Invoice.objects.filter(push_state="pushed").count() == CUSTOMERS

    wait_for(all_pushed, what="every invoice closed and pushed to Stripe", timeout=180)
    invoices = list(Invoice.objects.all())
    assert sorted(i.customer_id for i in invoices) == sorted(c.pk for c in customers)
    assert {(i.period_start, i.total) for i in invoices} == {(MONTH_START, 1000)}
    client = stripe_sdk.StripeClient("sk_test_payback", base_addresses={"api": stripe.url})
    mirrored = {row.customer_id: row.stripe_id for row in StripeCustomer.objects.all()}
    assert len(set(mirrored.values())) == CUSTOMERS  # one Stripe customer each
    for invoice in invoices:
        remote = client.v1.invoices.list(params={"customer": mirrored[invoice.customer_id]})
        assert [r.metadata["payback_invoice"] for r in remote.data] == [str(invoice.pk)]
