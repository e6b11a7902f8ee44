"""Enqueueing after commit, surviving a broker outage.

A task is sent once the transaction that made its work commits (`transaction.on_commit`).
If the broker is down then, the work is not lost: its facts are committed, the failure is
logged, and a beat sweep finds the work still undone and sends it again (prices:
metering.tasks.price_unpriced_events_sweep; invoice pushes, Stripe events and margin
breakdowns: the tasks of billing/stripe_sync and billing/analytics; alert deliveries:
alerts.tasks). Every task is safe to run
twice, so a sweep racing a late message does no harm.

Sending fails fast, because a caller (a request, a close of thousands of periods) waits on
it: no publish retries, each connect and reply bounded by CELERY_BROKER_TIMEOUT_SECONDS,
and after one failure the process does not try that broker again for
CELERY_ENQUEUE_BACKOFF_SECONDS (a frozen broker would otherwise cost every enqueue the
whole timeout).
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
from celery import Task
from celery.canvas import Signature
from django.conf import settings
from django.db import transaction

from common.backoff import UNREACHABLE, Backoff
from config.celery import app

logger = logging.getLogger(__name__)

_brokers = Backoff()  # by broker URL

_UNREACHABLE = (*UNREACHABLE, kombu.exceptions.KombuError)


def enqueue(task: Task | str, *args: Any) -> bool:
    """Send now; False (logged) when the broker is unreachable, now or moments ago.

    `task` is a task, or its name: services enqueue by name, so that no service imports
    a task module (tasks import services; the other way round would be a cycle, and an
    arrow from a lower app to a higher one)."""
    sending: Task | Signature = app.signature(task) if isinstance(task, str) else task
    name = task if isinstance(task, str) else task.name
    broker = app.conf.broker_write_url or app.conf.broker_url
    if _brokers.active(broker):
        logger.warning(
            "%s%r not enqueued, the broker was unreachable moments ago: a sweep will send it",
            name,
            args,
        )
        return False
    try:
        sending.apply_async(args, retry=False)
    except _UNREACHABLE as unreachable:
        _brokers.failed(broker, settings.CELERY_ENQUEUE_BACKOFF_SECONDS)
        logger.warning(
            "%s%r not enqueued, the broker is unreachable (%s): a sweep will send it",
            name,
            args,
            unreachable,
        )
        return False
    return True


def enqueue_on_commit(task: Task | str, *args: Any) -> None:
    transaction.on_commit(lambda: enqueue(task, *args))
