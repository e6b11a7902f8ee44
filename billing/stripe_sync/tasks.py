"""Celery tasks of the Stripe mirror: thin, take ids, safe to run twice."""

import random
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from billing.invoicing.models import PushState
from billing.stripe_sync import stripe_api
from billing.stripe_sync.selectors import invoices_push_stalled, stripe_events_stalled
from billing.stripe_sync.services import (
    invoice_push,
    invoice_push_failed,
    stripe_deliveries_prune,
    stripe_drift_check,
    stripe_event_process,
)
from billing.stripe_sync.services.top_ups import top_up_push, top_up_push_failed
from billing.stripe_sync.stripe_api import StripeRefused, StripeRetryable
from common.queue import enqueue

# Task names are those of earlier paybacks (billing.tasks.*), where every billing task
# lived in one module: messages queued before an upgrade still find their task, and beat
# and the services enqueue by these names (config/settings/celery.py, common/queue.py).


@shared_task(name="billing.tasks.push_invoice", bind=True, acks_late=True, max_retries=None)
def push_invoice(self: Task, invoice_id: int) -> str:
    """Mirror an invoice to Stripe. 5xx, 429 and timeouts retry with exponential backoff
    and jitter (at least Stripe's Retry-After); other 4xx, or the last try, mark the
    invoice failed and log an alert."""
    try:
        return invoice_push(invoice_id=invoice_id).push_state
    except StripeRefused as refused:
        invoice_push_failed(invoice_id=invoice_id, error=str(refused))
        return PushState.FAILED
    except StripeRetryable as failure:
        if self.request.retries >= settings.STRIPE_PUSH_MAX_RETRIES:
            invoice_push_failed(
                invoice_id=invoice_id, error=f"{failure} (after {self.request.retries} retries)"
            )
            return PushState.FAILED
        backoff = settings.STRIPE_PUSH_BACKOFF_SECONDS * 2**self.request.retries
        countdown = max(backoff, failure.retry_after or 0) * (1 + random.random() / 2)  # noqa: S311
        raise self.retry(countdown=countdown, exc=failure) from failure


@shared_task(name="stripe_sync.tasks.push_top_up", bind=True, acks_late=True, max_retries=None)
def push_top_up(self: Task, top_up_id: int) -> str:
    """Make a top-up's Stripe invoice and finalize it; retried as push_invoice is."""
    try:
        return top_up_push(top_up_id=top_up_id).status
    except StripeRefused as refused:
        return top_up_push_failed(top_up_id=top_up_id, error=str(refused)).status
    except StripeRetryable as failure:
        if self.request.retries >= settings.STRIPE_PUSH_MAX_RETRIES:
            error = f"{failure} (after {self.request.retries} retries)"
            return top_up_push_failed(top_up_id=top_up_id, error=error).status
        backoff = settings.STRIPE_PUSH_BACKOFF_SECONDS * 2**self.request.retries
        countdown = max(backoff, failure.retry_after or 0) * (1 + random.random() / 2)  # noqa: S311
        raise self.retry(countdown=countdown, exc=failure) from failure


@shared_task(name="billing.tasks.process_stripe_event", acks_late=True)
def process_stripe_event(event_id: int) -> str:
    """Apply a verified Stripe event once; a redelivery finds it processed."""
    return stripe_event_process(event_id=event_id).outcome


@shared_task(name="billing.tasks.check_stripe_drift")
def check_stripe_drift() -> int:
    """Beat: compare the last 90 days' pushed invoices with Stripe."""
    if not stripe_api.configured():
        return 0
    return stripe_drift_check(since=timezone.now() - timedelta(days=90))


@shared_task(name="billing.tasks.prune_stripe_deliveries")
def prune_stripe_deliveries() -> int:
    """Beat (daily): drop the bodies of Stripe deliveries processed more than
    STRIPE_WEBHOOK_RETENTION_DAYS ago, and refusals as old."""
    return stripe_deliveries_prune(now=timezone.now())


@shared_task(name="billing.tasks.resend_stalled")
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
