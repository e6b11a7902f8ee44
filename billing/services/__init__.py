"""Writes of the billing app: price books and subscriptions (plans.py), periods closed
into invoices (invoicing.py)."""

from billing.services.plans import (
    PriceBookError,
    customer_save,
    outcome_price_check,
    plan_canonical,
    plan_check,
    plan_version_billed,
    plan_version_revise,
    plans_load,
    subscription_periods_refused,
    subscription_set,
    tiers_check,
)

__all__ = [
    "PriceBookError",
    "customer_save",
    "outcome_price_check",
    "plan_canonical",
    "plan_check",
    "plan_version_billed",
    "plan_version_revise",
    "plans_load",
    "subscription_periods_refused",
    "subscription_set",
    "tiers_check",
]
