"""Writes of the billing app: price books and subscriptions (plans.py), periods closed
into invoices (invoicing.py)."""

from billing.services.plans import (
    PriceBookError,
    customer_save,
    outcome_price_check,
    plan_canonical,
    plans_load,
    subscription_set,
    tiers_check,
)

__all__ = [
    "PriceBookError",
    "customer_save",
    "outcome_price_check",
    "plan_canonical",
    "plans_load",
    "subscription_set",
    "tiers_check",
]
