"""Reads of invoicing: the one rating pipeline (rating.py: what a period bills, late
usage and credits, the preview and its margin), invoices and due periods (invoices.py),
and a period's calls in one scan (cells.py)."""

from billing.invoicing.selectors.invoices import (
    DuePeriod,
    customer_invoices,
    invoice_credit_notes,
    invoice_get,
    periods_due,
    subscription_periods_due,
)
from billing.invoicing.selectors.rating import (
    InvoicePreview,
    LateChange,
    Margin,
    RatedPeriod,
    invoice_preview,
    late_changes,
    margin_of,
    outcome_quantities,
    periods_rate,
    rating_quantities,
)

__all__ = [
    "DuePeriod",
    "InvoicePreview",
    "LateChange",
    "Margin",
    "RatedPeriod",
    "customer_invoices",
    "invoice_credit_notes",
    "invoice_get",
    "invoice_preview",
    "late_changes",
    "margin_of",
    "outcome_quantities",
    "periods_due",
    "periods_rate",
    "rating_quantities",
    "subscription_periods_due",
]
