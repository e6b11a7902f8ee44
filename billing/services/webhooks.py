"""Stripe webhooks: stored raw first, verified, then processed once per Stripe event id.
Statuses only move forward: a stale delivery (a payment_failed after paid, say) changes
nothing."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.integrations import stripe as stripe_api
from billing.models import Invoice, InvoiceStatus, StripeEvent, StripeWebhookDelivery
from billing.services.invoicing import invoice_can_reach
from config.queue import enqueue_on_commit

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


def webhook_receive(*, body: bytes, signature: str | None) -> tuple[StripeEvent | None, bool]:
    """Store the delivery, verify it, record its event once. Returns (event, created);
    raises InvalidSignature (the delivery stays stored, marked unverified)."""
    delivery = StripeWebhookDelivery.objects.create(body=body, signature=(signature or "")[:1000])
    try:
        payload = stripe_api.webhook_event(payload=body, signature=signature)
    except stripe_api.InvalidSignature:
        StripeWebhookDelivery.objects.filter(pk=delivery.pk).update(verified=False)
        raise
    try:
        with transaction.atomic():
            event, created = StripeEvent.objects.get_or_create(
                stripe_id=payload["id"], defaults={"type": payload["type"], "payload": payload}
            )
    except IntegrityError:  # a concurrent delivery of the same event won the insert
        event, created = StripeEvent.objects.get(stripe_id=payload["id"]), False
    StripeWebhookDelivery.objects.filter(pk=delivery.pk).update(verified=True, event=event)
    if created:
        from billing.tasks import process_stripe_event

        enqueue_on_commit(process_stripe_event, event.pk)
    return event, created


def _apply(payload: dict[str, Any], event_type: str) -> str:
    if event_type not in _INVOICE_EVENTS:
        return "ignored: not an invoice event payback handles"
    remote = payload["data"]["object"]
    invoice = (
        Invoice.objects.select_for_update().filter(stripe_invoice_id=remote.get("id", "")).first()
    )
    if invoice is None:
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
