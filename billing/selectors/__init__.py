"""Reads of the billing app: plans and subscriptions (plans.py), the invoice preview and
margin (preview.py), invoices and due periods (invoices.py)."""

from billing.selectors.invoices import (
    DuePeriod,
    customer_invoices,
    late_adjustments,
    periods_due,
    subscription_periods_due,
)
from billing.selectors.plans import (
    DEFAULT_REVERSAL_WINDOW,
    FixedSeats,
    customer_plan_terms,
    fixed_seats,
    plan_change_pending,
    plan_document,
    plan_in_effect,
    plan_terms,
    plan_version_current,
    reversal_window,
    seats_at,
    subscription_of,
)
from billing.selectors.preview import (
    InvoicePreview,
    Margin,
    invoice_preview,
    margin_of,
    period_quantities,
)

__all__ = [
    "DEFAULT_REVERSAL_WINDOW",
    "DuePeriod",
    "FixedSeats",
    "InvoicePreview",
    "Margin",
    "customer_invoices",
    "customer_plan_terms",
    "fixed_seats",
    "invoice_preview",
    "late_adjustments",
    "margin_of",
    "period_quantities",
    "periods_due",
    "plan_change_pending",
    "plan_document",
    "plan_in_effect",
    "plan_terms",
    "plan_version_current",
    "reversal_window",
    "seats_at",
    "subscription_of",
    "subscription_periods_due",
]
