"""Celery tasks of invoicing: thin, take ids, safe to run twice."""

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from billing.invoicing.folding import running_fold
from billing.invoicing.fx import MissingFxRate
from billing.invoicing.selectors import periods_due
from billing.invoicing.services import PeriodNotReady, period_close

# Task names are those of earlier paybacks (billing.tasks.*), where every billing task
# lived in one module: messages queued before an upgrade still find their task, and beat
# and the services enqueue by these names (config/settings/celery.py, common/queue.py).


@shared_task(
    name="billing.tasks.close_period",
    acks_late=True,
    autoretry_for=(PeriodNotReady, MissingFxRate),
    retry_backoff=10,
    max_retries=12,
)
def close_period(customer_id: int, period_start: str) -> int:
    """Close one customer period; a second delivery finds the invoice and returns it.
    Periods of one customer close in order: a later one retries until the earlier is. A
    period whose fees need an FX rate nobody entered retries too (and beat enqueues it
    again while it is due); the alert `missing_fx_rate` names the rate."""
    invoice = period_close(
        customer_id=customer_id, period_start=datetime.fromisoformat(period_start)
    )
    return invoice.pk


@shared_task(name="billing.tasks.close_due_periods")
def close_due_periods() -> int:
    """Beat: one close_period task per customer period whose grace window has passed."""
    count = 0
    for due in periods_due(as_of=timezone.now()):
        close_period.delay(due.customer_id, due.start.isoformat())
        count += 1
    return count


@shared_task(name="invoicing.tasks.fold_running_days")
def fold_running_days() -> int:
    """Beat: the days that are over join the running rollup, one at a time."""
    return running_fold(now=timezone.now())
