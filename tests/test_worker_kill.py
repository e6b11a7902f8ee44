"""A Celery worker killed mid-task (SIGKILL): the task is delivered again and completes
once.

Real worker processes (`celery worker`, prefork, one child) on a Redis server of the
test's own, closing a customer's month. The test holds the invoices table locked, so the
close waits inside its database transaction; the test kills it there, then lets go.
- The pool child killed (what the kernel's OOM killer does): the worker's parent sees it
  die and puts the message back at once (task_reject_on_worker_lost with acks_late).
- The whole worker killed, parent and child: nothing is left to put it back; Redis holds
  the message as unacknowledged, and a worker started afterwards takes it again once the
  visibility timeout (CELERY_BROKER_VISIBILITY_TIMEOUT) has passed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from billing.invoicing.models import Invoice
from billing.invoicing.tasks import close_period
from billing.plans.models import Subscription
from config.celery import app as celery_app
from config.embedded import redis_start
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.polling import wait_for
from tests.support.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
QUEUE = "kill-test"
VISIBILITY_TIMEOUT = 5  # seconds


@pytest.fixture
def broker() -> Iterator[str]:
    """A Redis server of this test's own: no other worker takes the message, and no
    other test's unacknowledged messages are restored by this test's workers."""
    folder = Path(tempfile.mkdtemp(prefix="payback-kill-"))  # a short unix socket path
    server, url = redis_start(folder)
    yield url
    server.terminate()
    server.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


class Worker:
    def __init__(self, broker: str, log: Path) -> None:
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker,
            "CELERY_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "DJANGO_SETTINGS_MODULE": "config.django.base",
            "STRIPE_API_KEY": "",
            "LOG_FORMAT": "text",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker",
                 "--pool", "prefork", "--concurrency", "1", "--queues", QUEUE,
                 "--loglevel", "INFO", "--without-mingle", "--without-gossip",
                 "--without-heartbeat", "--hostname", f"kill-test-{log.stem}@%h"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def pool_child(self) -> int:
        """The pid of the pool's one child process, the one running tasks."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        children = wait_for(lambda: path.read_text().split(), what="a pool child")
        return int(children[0])

    def kill_all(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_all()


class InvoicesLocked:
    """The invoices table locked against writes from another connection: a close waits
    on it inside its transaction until `release`."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(database_url())
        self.conn.execute("BEGIN")
        self.conn.execute("LOCK TABLE billing_invoice IN EXCLUSIVE MODE")

    def waiting(self) -> set[int]:
        """Database backends waiting for a lock: on the table, or (a close delivered
        again) on a row that the killed close's orphaned backend still holds, until it
        finds its client gone and rolls back."""
        with psycopg.connect(database_url()) as c:
            rows = c.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchall()
        return {pid for (pid,) in rows}

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


@pytest.fixture
def month_to_close() -> tuple[int, str]:
    plan = plan_load(code="basic", base_fee="10")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=plan.plan, started_at=OCTOBER)
    return customer.pk, OCTOBER.isoformat()


def enqueue_close(broker: str, customer_id: int, period_start: str) -> str:
    with celery_app.connection_for_write(broker) as conn:
        result = close_period.apply_async(
            args=[customer_id, period_start], queue=QUEUE, connection=conn
        )
    return result.id


def succeeded(task_id: str, *logs: Path) -> int:
    pattern = re.compile(rf"close_period\[{task_id}\] succeeded")
    return sum(len(pattern.findall(log.read_text(errors="replace"))) for log in logs)


def test_a_killed_pool_child_s_task_is_delivered_again_and_closes_the_month_once(
    broker, month_to_close, tmp_path
):
    lock = InvoicesLocked()
    worker = Worker(broker, tmp_path / "worker.log")
    try:
        task_id = enqueue_close(broker, *month_to_close)
        first = wait_for(lock.waiting, what="the close to wait on the lock")
        child = worker.pool_child()

        os.kill(child, signal.SIGKILL)

        wait_for(lambda: lock.waiting() - first, what="the task delivered again")
        lock.release()
        wait_for(lambda: succeeded(task_id, worker.log), what="the task to complete")
        assert "signal 9 (SIGKILL)" in worker.log.read_text()
    finally:
        lock.release()
        worker.stop()

    assert Invoice.objects.filter(customer_id=month_to_close[0]).count() == 1
    assert succeeded(task_id, worker.log) == 1


def test_a_killed_worker_s_task_is_taken_by_the_next_worker_and_closes_the_month_once(
    broker, month_to_close, tmp_path
):
    lock = InvoicesLocked()
    first_worker = Worker(broker, tmp_path / "first.log")
    next_worker = None
    try:
        task_id = enqueue_close(broker, *month_to_close)
        first = wait_for(lock.waiting, what="the close to wait on the lock")

        first_worker.kill_all()
        next_worker = Worker(broker, tmp_path / "next.log")

        wait_for(
            lambda: lock.waiting() - first,
            what="the next worker to take the task",
            timeout=VISIBILITY_TIMEOUT + 60,
        )
        lock.release()
        wait_for(lambda: succeeded(task_id, next_worker.log), what="the task to complete")
    finally:
        lock.release()
        first_worker.stop()
        if next_worker is not None:
            next_worker.stop()

    assert Invoice.objects.filter(customer_id=month_to_close[0]).count() == 1
    assert succeeded(task_id, first_worker.log, next_worker.log) == 1
