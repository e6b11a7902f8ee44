"""Writes of the Stripe mirror: invoices pushed to Stripe and the operator's moves made
there first (push.py), credit notes and reissues (corrections.py), webhooks received and
their events applied once (webhooks.py)."""

from billing.stripe_sync.services.corrections import (
    credit_note_push,
    credit_note_push_failed,
    invoice_void_and_reissue,
)
from billing.stripe_sync.services.push import (
    StripeLineTerms,
    invoice_cancel,
    invoice_push,
    invoice_push_failed,
    stripe_drift_check,
    stripe_line_terms,
)
from billing.stripe_sync.services.webhooks import (
    stripe_deliveries_prune,
    stripe_event_process,
    webhook_receive,
)

__all__ = [
    "StripeLineTerms",
    "credit_note_push",
    "credit_note_push_failed",
    "invoice_cancel",
    "invoice_push",
    "invoice_push_failed",
    "invoice_void_and_reissue",
    "stripe_deliveries_prune",
    "stripe_drift_check",
    "stripe_event_process",
    "stripe_line_terms",
    "webhook_receive",
]
