"""Reads of the Stripe mirror: the work a lost message left undone."""

from __future__ import annotations

from datetime import datetime

from billing.invoicing.models import CreditNote, Invoice, PushState
from billing.stripe_sync.models import StripeEvent


def invoices_push_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Invoices made before `before` and still waiting for their first push."""
    return list(
        Invoice.objects.filter(push_state=PushState.PENDING, push_attempts=0, created_at__lt=before)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def credit_notes_push_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Credit notes issued before `before` and still waiting for their first push."""
    return list(
        CreditNote.objects.filter(
            push_state=PushState.PENDING, push_attempts=0, created_at__lt=before
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def stripe_events_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Verified Stripe events received before `before` and not processed."""
    return list(
        StripeEvent.objects.filter(processed_at__isnull=True, received_at__lt=before)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
