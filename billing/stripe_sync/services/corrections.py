"""The Stripe side of corrections (billing/invoicing/services/corrections.py): a credit
note mirrored to Stripe's credit notes, under an idempotency key from its row as every
push; and a reissue, whose void is made in Stripe before payback bills the period again.
"""

from __future__ import annotations

import logging

from django.db.models import F

from billing.invoicing.models import CreditNote, Invoice, InvoiceStatus, PushState
from billing.invoicing.services import (
    invoice_reissue,
    invoice_reissue_preview,
    reissue_change_required,
)
from billing.stripe_sync import stripe_api

logger = logging.getLogger(__name__)


def credit_note_push(*, credit_note_id: int) -> CreditNote:
    """Make the credit note in Stripe, once. Safe to run again at any point (the same
    idempotency key answers the note Stripe made); raises StripeRetryable or
    StripeRefused for the task to handle."""
    note = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
    # PUSHING too: a push that died after marking it runs again (the same key).
    if note.push_state in (PushState.PUSHED, PushState.NOT_SENT):
        return note
    CreditNote.objects.filter(pk=note.pk).update(
        push_state=PushState.PUSHING, push_attempts=F("push_attempts") + 1
    )
    made = stripe_api.credit_note_create(
        credit_note_pk=note.pk,
        stripe_invoice=note.invoice.stripe_invoice_id,
        lines=[(line.description, line.amount) for line in note.lines.order_by("position")],
        method=note.method,
        reason=note.reason,
        memo=note.memo,
    )
    note.stripe_credit_note_id, note.pdf = made.id, made.pdf
    note.push_state, note.push_error = PushState.PUSHED, ""
    note.save(update_fields=["stripe_credit_note_id", "pdf", "push_state", "push_error"])
    return note


def credit_note_push_failed(*, credit_note_id: int, error: str) -> None:
    """Give up on pushing: the admin lists the note as failed (push it again from there)."""
    CreditNote.objects.filter(pk=credit_note_id).update(
        push_state=PushState.FAILED, push_error=error[:2000]
    )
    logger.error("ALERT: credit note %s could not be pushed to Stripe: %s", credit_note_id, error)


def invoice_void_and_reissue(*, invoice_id: int, plan_version_id: int, by: str = "") -> Invoice:
    """An operator's reissue: the preview's checks first (nothing is voided for a reissue
    that would be refused), then the void in Stripe when the invoice is there (so Stripe
    never collects both), then payback's void and new invoice in one transaction. A retry
    after a failure between the two finds Stripe's void answered again (its key)."""
    reissue_change_required(
        invoice_reissue_preview(invoice_id=invoice_id, plan_version_id=plan_version_id)
    )
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.stripe_invoice_id and invoice.status != InvoiceStatus.VOID:
        stripe_api.invoice_void(invoice_pk=invoice.pk, stripe_invoice=invoice.stripe_invoice_id)
    return invoice_reissue(invoice_id=invoice_id, plan_version_id=plan_version_id, by=by)
