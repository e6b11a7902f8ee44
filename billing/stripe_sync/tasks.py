"""Celery tasks of the Stripe mirror: thin, take ids, safe to run twice."""

import random
from collections.abc import Callable
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from billing.invoicing.models import PushState
from billing.stripe_sync import stripe_api
from billing.stripe_sync.selectors import (
    credit_notes_push_stalled,
    invoices_push_stalled,
    stripe_events_stalled,
)
from billing.stripe_sync.services import (
    credit_note_push,
    credit_note_push_failed,
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


def _pushed(task: Task, push: Callable[[], str], failed: Callable[[str], str]) -> str:
    """Run a push to Stripe: 5xx, 429 and timeouts retry with exponential backoff and
    jitter (at least Stripe's Retry-After); other 4xx, or the last try, give up through
    `failed` (which marks the row failed and alerts)."""
    try:
        return push()
    except StripeRefused as refused:
        return failed(str(refused))
    except StripeRetryable as failure:
        if task.request.retries >= settings.STRIPE_PUSH_MAX_RETRIES:
            return failed(f"{failure} (after {task.request.retries} retries)")
        backoff = settings.STRIPE_PUSH_BACKOFF_SECONDS * 2**task.request.retries
        countdown = max(backoff, failure.retry_after or 0) * (1 + random.random() / 2)  # noqa: S311
        raise task.retry(countdown=countdown, exc=failure) from failure


def _failed(mark: Callable[..., object], **row: int) -> Callable[[str], str]:
    def failed(error: str) -> str:
        mark(**row, error=error)
        return PushState.FAILED

    return failed


@shared_task(name="billing.tasks.push_invoice", bind=True, acks_late=True, max_retries=None)
def push_invoice(self: Task, invoice_id: int) -> str:
    """Mirror an invoice to Stripe, retried as _pushed says; the invoice is marked failed
    (and an alert logged) when it gives up."""
    return _pushed(
        self,
        lambda: invoice_push(invoice_id=invoice_id).push_state,
        _failed(invoice_push_failed, invoice_id=invoice_id),
    )


@shared_task(name="stripe_sync.tasks.push_top_up", bind=True, acks_late=True, max_retries=None)
def push_top_up(self: Task, top_up_id: int) -> str:
    """Make a top-up's Stripe invoice and finalize it; retried as push_invoice is."""
    return _pushed(
        self,
        lambda: top_up_push(top_up_id=top_up_id).status,
        lambda error: top_up_push_failed(top_up_id=top_up_id, error=error).status,
    )


@shared_task(name="stripe_sync.tasks.push_credit_note", bind=True, acks_late=True, max_retries=None)
def push_credit_note(self: Task, credit_note_id: int) -> str:
    """Make a credit note in Stripe; retried as push_invoice is."""
    return _pushed(
        self,
        lambda: credit_note_push(credit_note_id=credit_note_id).push_state,
        _failed(credit_note_push_failed, credit_note_id=credit_note_id),
    )


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
    broker restart): invoices and credit notes still waiting to be pushed, Stripe events
    not processed. Their tasks are safe to run twice. Returns how many were sent."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    if stripe_api.configured():
        for invoice_id in invoices_push_stalled(before=before):
            sent += enqueue(push_invoice, invoice_id)
        for credit_note_id in credit_notes_push_stalled(before=before):
            sent += enqueue(push_credit_note, credit_note_id)
    for event_id in stripe_events_stalled(before=before):
        sent += enqueue(process_stripe_event, event_id)
    return sent
