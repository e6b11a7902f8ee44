"""Reads of the billing app: plans and subscriptions (plans.py), the one rating pipeline
(rating.py: what a period bills, late usage and credits, the preview and its margin),
invoices and due periods (invoices.py), a period's calls in one scan (cells.py); the unit
economics: margins (margins.py), premium break-even (premium.py), the cost levers
(savings.py) and the admin dashboard's data (dashboard.py)."""

from billing.selectors.invoices import (
    DuePeriod,
    customer_invoices,
    invoice_get,
    periods_due,
    subscription_periods_due,
)
from billing.selectors.plans import (
    DEFAULT_REVERSAL_WINDOW,
    FixedSeats,
    customer_period,
    customer_plan_terms,
    fixed_seats_many,
    plan_change_pending,
    plan_document,
    plan_in_effect,
    plan_terms,
    plan_version_current,
    plans_in_effect,
    reversal_window,
    seats_at,
    subscription_of,
)
from billing.selectors.rating import (
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
    "DEFAULT_REVERSAL_WINDOW",
    "DuePeriod",
    "FixedSeats",
    "InvoicePreview",
    "LateChange",
    "Margin",
    "RatedPeriod",
    "customer_invoices",
    "customer_period",
    "customer_plan_terms",
    "fixed_seats_many",
    "invoice_get",
    "invoice_preview",
    "late_changes",
    "margin_of",
    "outcome_quantities",
    "periods_due",
    "periods_rate",
    "plan_change_pending",
    "plan_document",
    "plan_in_effect",
    "plan_terms",
    "plan_version_current",
    "plans_in_effect",
    "rating_quantities",
    "reversal_window",
    "seats_at",
    "subscription_of",
    "subscription_periods_due",
]
