"""Celery tasks of the billing app: thin, take ids, safe to run twice."""

import random
from datetime import datetime, timedelta

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from billing.fx import MissingFxRate
from billing.integrations import stripe as stripe_api
from billing.integrations.stripe import StripeRefused, StripeRetryable
from billing.selectors import periods_due
from billing.selectors.invoices import (
    invoices_push_stalled,
    invoices_unreconciled,
    stripe_events_stalled,
)
from billing.services.invoicing import PeriodNotReady, period_close
from billing.services.reconciliation import invoices_reconcile
from billing.services.stripe_push import invoice_push, invoice_push_failed, stripe_drift_check
from billing.services.webhooks import stripe_deliveries_prune, stripe_event_process
from config.queue import enqueue


@shared_task(
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


@shared_task
def close_due_periods() -> int:
    """Beat: one close_period task per customer period whose grace window has passed."""
    count = 0
    for due in periods_due(as_of=timezone.now()):
        close_period.delay(due.customer_id, due.start.isoformat())
        count += 1
    return count


@shared_task(bind=True, acks_late=True, max_retries=None)
def push_invoice(self: Task, invoice_id: int) -> str:
    """Mirror an invoice to Stripe. 5xx, 429 and timeouts retry with exponential backoff
    and jitter (at least Stripe's Retry-After); other 4xx, or the last try, mark the
    invoice failed and log an alert."""
    try:
        return invoice_push(invoice_id=invoice_id).push_state
    except StripeRefused as refused:
        invoice_push_failed(invoice_id=invoice_id, error=str(refused))
        return "failed"
    except StripeRetryable as failure:
        if self.request.retries >= settings.STRIPE_PUSH_MAX_RETRIES:
            invoice_push_failed(
                invoice_id=invoice_id, error=f"{failure} (after {self.request.retries} retries)"
            )
            return "failed"
        backoff = settings.STRIPE_PUSH_BACKOFF_SECONDS * 2**self.request.retries
        countdown = max(backoff, failure.retry_after or 0) * (1 + random.random() / 2)  # noqa: S311
        raise self.retry(countdown=countdown, exc=failure) from failure


@shared_task(acks_late=True)
def process_stripe_event(event_id: int) -> str:
    """Apply a verified Stripe event once; a redelivery finds it processed."""
    return stripe_event_process(event_id=event_id).outcome


@shared_task
def check_stripe_drift() -> int:
    """Beat: compare the last 90 days' pushed invoices with Stripe."""
    if not stripe_api.configured():
        return 0
    return stripe_drift_check(since=timezone.now() - timedelta(days=90))


@shared_task(acks_late=True)
def reconcile_invoices(invoice_ids: list[int]) -> int:
    """After a close: the margin breakdown of its invoices (safe to run twice)."""
    return invoices_reconcile(invoice_ids=invoice_ids)


@shared_task
def reconcile_missing(limit: int = 5000) -> int:
    """Beat: make the breakdown of invoices left without one (a lost task, or closed by
    an older payback)."""
    invoice_ids = invoices_unreconciled(limit=limit)
    return invoices_reconcile(invoice_ids=invoice_ids) if invoice_ids else 0


@shared_task
def prune_stripe_deliveries() -> int:
    """Beat (daily): drop the bodies of Stripe deliveries processed more than
    STRIPE_WEBHOOK_RETENTION_DAYS ago, and refusals as old."""
    return stripe_deliveries_prune(now=timezone.now())


@shared_task
def resend_stalled(older_than_seconds: int = 600) -> int:
    """Beat: send again the work whose message was lost (a broker outage at enqueue, a
    broker restart): invoices still waiting to be pushed, Stripe events not processed.
    Their tasks are safe to run twice. Returns how many were sent."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    if stripe_api.configured():
        for invoice_id in invoices_push_stalled(before=before):
            sent += enqueue(push_invoice, invoice_id)
    for event_id in stripe_events_stalled(before=before):
        sent += enqueue(process_stripe_event, event_id)
    return sent
