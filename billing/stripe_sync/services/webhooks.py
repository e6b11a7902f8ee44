"""Stripe webhooks: verified first (what is not signed by Stripe stores next to nothing),
stored with their event, then processed once per Stripe event id. Statuses only move
forward: a stale delivery (a payment_failed after paid, say) changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.credits.models import TopUp, TopUpStatus
from billing.credits.services import top_up_moved, top_up_paid
from billing.invoicing.models import Invoice, InvoiceStatus
from billing.invoicing.services import invoice_can_reach
from billing.stripe_sync import stripe_api
from billing.stripe_sync.models import StripeEvent, StripeWebhookDelivery
from common.queue import enqueue_on_commit

PROCESS_STRIPE_EVENT = "billing.tasks.process_stripe_event"  # billing/stripe_sync/tasks.py

logger = logging.getLogger(__name__)

# Stripe event type -> the local status it moves an invoice to.
_INVOICE_EVENTS: dict[str, str | None] = {
    "invoice.finalized": InvoiceStatus.FINALIZED,
    "invoice.paid": InvoiceStatus.PAID,
    "invoice.payment_succeeded": InvoiceStatus.PAID,
    "invoice.voided": InvoiceStatus.VOID,
    "invoice.marked_uncollectible": InvoiceStatus.UNCOLLECTIBLE,
    "invoice.payment_failed": None,  # recorded; the invoice stays open for Stripe's retries
}


# What a refused request keeps of its body, for diagnosis.
REFUSED_BODY_KEPT = 2048


def webhook_receive(
    *, body: bytes, signature: str | None, address: str = ""
) -> tuple[StripeEvent, bool]:
    """Verify a delivery, then record it and its event once (the unique Stripe event id).
    Returns (event, created). Raises InvalidSignature or InvalidPayload after keeping a
    small record of the refusal: what is not signed by Stripe stores next to nothing."""
    try:
        payload = stripe_api.webhook_event(payload=body, signature=signature)
    except (stripe_api.InvalidSignature, stripe_api.InvalidPayload) as refused:
        _refusal_record(body=body, signature=signature, address=address, why=str(refused))
        raise
    try:
        with transaction.atomic():
            event, created = StripeEvent.objects.get_or_create(
                stripe_id=payload["id"], defaults={"type": payload["type"], "payload": payload}
            )
    except IntegrityError:  # a concurrent delivery of the same event won the insert
        event, created = StripeEvent.objects.get(stripe_id=payload["id"]), False
    StripeWebhookDelivery.objects.create(
        body=body,
        size=len(body),
        signature=(signature or "")[:1000],
        remote_address=address[:64],
        verified=True,
        event=event,
    )
    if created:
        enqueue_on_commit(PROCESS_STRIPE_EVENT, event.pk)
    return event, created


def _refusal_record(*, body: bytes, signature: str | None, address: str, why: str) -> None:
    """Keep the first bytes of a refused request and why, and only the newest
    STRIPE_WEBHOOK_REFUSALS_KEPT refusals."""
    kept = StripeWebhookDelivery.objects.create(
        body=body[:REFUSED_BODY_KEPT],
        size=len(body),
        signature=(signature or "")[:1000],
        remote_address=address[:64],
        verified=False,
        refusal=why[:300],
    )
    StripeWebhookDelivery.objects.filter(
        verified=False, pk__lte=kept.pk - settings.STRIPE_WEBHOOK_REFUSALS_KEPT
    ).delete()


def stripe_deliveries_prune(*, now: datetime) -> int:
    """Delete the bodies of deliveries whose event was processed more than
    STRIPE_WEBHOOK_RETENTION_DAYS ago, and refusals as old (the events stay: they are
    the record of what payback applied). Returns how many were deleted."""
    before = now - timedelta(days=settings.STRIPE_WEBHOOK_RETENTION_DAYS)
    processed, _ = StripeWebhookDelivery.objects.filter(event__processed_at__lt=before).delete()
    refused, _ = StripeWebhookDelivery.objects.filter(
        verified=False, received_at__lt=before
    ).delete()
    return processed + refused


def _apply_to_top_up(top_up: TopUp, event_type: str, created: int | None) -> str:
    """A top-up's invoice paid (its grant, once), voided, or still open."""
    if _INVOICE_EVENTS[event_type] == InvoiceStatus.PAID:
        paid_at = datetime.fromtimestamp(created, tz=UTC) if created else timezone.now()
        top_up_paid(top_up_id=top_up.pk, at=paid_at)
        return f"top-up {top_up.pk} is paid: its credits are granted"
    if _INVOICE_EVENTS[event_type] == InvoiceStatus.VOID:
        top_up_moved(top_up_id=top_up.pk, status=TopUpStatus.VOID)
        return f"top-up {top_up.pk} is void"
    return f"recorded: top-up {top_up.pk} stays {top_up.status}"


def _apply(payload: dict[str, Any], event_type: str) -> str:
    if event_type not in _INVOICE_EVENTS:
        return "ignored: not an invoice event payback handles"
    remote = payload["data"]["object"]
    invoice = (
        Invoice.objects.select_for_update().filter(stripe_invoice_id=remote.get("id", "")).first()
    )
    if invoice is None:
        top_up = TopUp.objects.filter(stripe_invoice_id=remote.get("id") or "-").first()
        if top_up is not None:
            return _apply_to_top_up(top_up, event_type, payload.get("created"))
        return f"ignored: no local invoice for {remote.get('id')}"
    target = _INVOICE_EVENTS[event_type]
    if target is None:
        return f"recorded: invoice {invoice.pk} stays {invoice.status}"
    if invoice.status == target:
        return f"invoice {invoice.pk} already {target}"
    if not invoice_can_reach(invoice.status, target):
        return f"stale: invoice {invoice.pk} is {invoice.status}, not moved to {target}"
    invoice.status = target
    invoice.save(update_fields=["status", "updated_at"])
    return f"invoice {invoice.pk} is {target}"


def stripe_event_process(*, event_id: int) -> StripeEvent:
    """Process a stored event once: a second run finds it processed."""
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().get(pk=event_id)
        if event.processed_at is not None:
            return event
        event.outcome = _apply(event.payload, event.type)[:300]
        event.processed_at = timezone.now()
        event.save(update_fields=["outcome", "processed_at"])
    logger.info("stripe event %s %s: %s", event.stripe_id, event.type, event.outcome)
    return event
