"""Enqueueing after commit, surviving a broker outage.

A task is sent once the transaction that made its work commits (`transaction.on_commit`).
If the broker is down then, the work is not lost: its facts are committed, the failure is
logged, and a beat sweep finds the work still undone and sends it again (prices:
metering.tasks.price_unpriced_events_sweep; invoice pushes, Stripe events and margin
breakdowns: billing.tasks; alert deliveries: alerts.tasks). Every task is safe to run
twice, so a sweep racing a late message does no harm.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue(task: Task, *args: Any) -> bool:
    """Send now; False (logged) when the broker is unreachable."""
    try:
        task.delay(*args)
    except (OSError, kombu.exceptions.KombuError) as unreachable:
        logger.warning(
            "%s%r not enqueued, the broker is unreachable (%s): a sweep will send it",
            task.name,
            args,
            unreachable,
        )
        return False
    return True


def enqueue_on_commit(task: Task, *args: Any) -> None:
    transaction.on_commit(lambda: enqueue(task, *args))
