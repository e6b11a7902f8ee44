"""Writes of invoicing: closing periods into invoices and moving them through their
states (closing.py); correcting them with credit notes, or voiding and reissuing a
period from the same snapshot (corrections.py)."""

from billing.invoicing.services.closing import (
    ClosedPeriods,
    PeriodNotReady,
    invoice_can_move,
    invoice_can_reach,
    invoice_move,
    period_close,
    periods_close,
    periods_due_close,
)
from billing.invoicing.services.corrections import (
    CreditLineRequest,
    CreditNoteRequest,
    LineChange,
    Reissue,
    credit_note_issue,
    invoice_reissue,
    invoice_reissue_preview,
    reissue_change_required,
)

__all__ = [
    "ClosedPeriods",
    "CreditLineRequest",
    "CreditNoteRequest",
    "LineChange",
    "PeriodNotReady",
    "Reissue",
    "credit_note_issue",
    "invoice_can_move",
    "invoice_can_reach",
    "invoice_move",
    "invoice_reissue",
    "invoice_reissue_preview",
    "period_close",
    "periods_close",
    "periods_due_close",
    "reissue_change_required",
]
