"""The SDK's transactional outbox for Django backends (payback_client.django): a record
exists only if the backend's transaction commits, and reaches payback exactly once, a
sender killed midway included."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from payback_client.django.models import OutboxRecord
from payback_client.django.outbox import Sent, outbox, outbox_send

from metering.models import UsageEvent
from outcomes.models import Outcome
from tests.sdk.conftest import Server
from tests.support.flaky_proxy import FlakyProxy
from tests.support.polling import wait_for
from tests.support.processes import database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sends_to(settings: Any, server: Server) -> Any:
    """Point the outbox's sender at `url` (the server, or a proxy in front of it)."""
    import payback_client.django.outbox as module

    def point(url: str) -> None:
        settings.PAYBACK_API_KEY, settings.PAYBACK_URL = server.key, url
        module._sender = None  # made again from the settings

    yield point
    if module._sender is not None:
        module._sender.close()
    module._sender = None


class Rollback(Exception):
    pass


def test_a_record_in_a_transaction_that_rolls_back_is_never_sent(
    server: Server, sends_to: Any
) -> None:
    sends_to(server.url)

    with pytest.raises(Rollback), transaction.atomic():
        outbox.record_outcome(type="resolution", customer="acme", status="succeeded", id="t-1")
        outbox.record_call(customer="acme", model="gpt-4o", input_tokens=10, outcome="t-1")
        raise Rollback  # the ticket was not resolved after all

    assert not OutboxRecord.objects.exists()
    assert outbox_send() == Sent(0, 0, 0)
    assert not Outcome.objects.exists() and not UsageEvent.objects.exists()


def test_a_committed_record_is_sent_once_and_deleted(server: Server, sends_to: Any) -> None:
    sends_to(server.url)

    with transaction.atomic():
        outbox.record_outcome(type="resolution", customer="acme", status="succeeded", id="t-1")
        for n in range(3):
            outbox.record_call(customer="acme", model="gpt-4o", input_tokens=n, outcome="t-1")

    assert outbox_send() == Sent(4, 0, 0)
    assert outbox_send() == Sent(0, 0, 0)
    assert Outcome.objects.get(external_id="t-1").status == "succeeded"
    assert UsageEvent.objects.filter(outcome_ref="t-1").count() == 3
    assert not OutboxRecord.objects.exists()


def test_a_record_payback_refuses_stays_with_its_error_and_holds_up_nothing(
    server: Server, sends_to: Any
) -> None:
    sends_to(server.url)
    with transaction.atomic():
        good = outbox.record_call(customer="acme", model="gpt-4o", input_tokens=1)
        bad = outbox.record_call(customer="nobody", model="gpt-4o", input_tokens=1)

    assert outbox_send() == Sent(1, 1, 0)
    assert outbox_send() == Sent(0, 0, 0)  # the refused row is not sent again

    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == [good]
    (kept,) = OutboxRecord.objects.all()
    assert kept.record_id == bad and kept.refused_at is not None
    assert kept.error.startswith("unknown_customer")


@pytest.mark.timeout(180)
def test_a_sender_killed_after_payback_stored_its_batch_sends_it_again_exactly_once(
    server: Server, proxy: FlakyProxy, sends_to: Any
) -> None:
    with transaction.atomic():
        ids = [outbox.record_call(customer="acme", model="gpt-4o", input_tokens=n)
               for n in range(50)]  # fmt: skip
    proxy.hold_next_answer()  # payback stores the batch; the sender never hears back
    database = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.django.test",
                "DATABASE_URL": database_url(), "PAYBACK_API_KEY": server.key,
                "PAYBACK_URL": proxy.url}  # fmt: skip
    sender = subprocess.Popen(
        [sys.executable, "manage.py", "send_payback_outbox"], cwd=ROOT, env=database,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: UsageEvent.objects.count() == 50, what="payback to store the batch")
    os.kill(sender.pid, signal.SIGKILL)
    sender.wait(30)

    assert OutboxRecord.objects.count() == 50  # its transaction died with it
    sends_to(proxy.url)
    assert outbox_send() == Sent(50, 0, 0)

    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == sorted(ids)
    assert [s.answered for s in proxy.seen] == [0, 200]  # the second answered: duplicates
    assert not OutboxRecord.objects.exists()


def test_the_celery_task_sends_the_outbox(server: Server, sends_to: Any) -> None:
    from payback_client.django.tasks import send_payback_outbox

    sends_to(server.url)
    with transaction.atomic():
        outbox.record_call(customer="acme", model="gpt-4o", input_tokens=1)
        outbox.record_call(customer="globex", model="gpt-4o", input_tokens=1)

    assert send_payback_outbox.apply().get() == 2
    assert UsageEvent.objects.count() == 2
