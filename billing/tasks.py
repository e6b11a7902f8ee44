"""Celery tasks of the billing app: thin, take ids, safe to run twice."""

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from billing.selectors import periods_due
from billing.services.invoicing import period_close


@shared_task(acks_late=True)
def close_period(customer_id: int, period_start: str) -> int:
    """Close one customer period; a second delivery finds the invoice and returns it."""
    invoice = period_close(
        customer_id=customer_id, period_start=datetime.fromisoformat(period_start)
    )
    return invoice.pk


@shared_task
def close_due_periods() -> int:
    """Beat: one close_period task per customer period whose grace window has passed."""
    count = 0
    for due in periods_due(as_of=timezone.now()):
        close_period.delay(due.customer_id, due.start.isoformat())
        count += 1
    return count
