"""Writes of credits: grants and the ledger (grants.py), top-ups (top_ups.py)."""

from billing.credits.services.grants import (
    GrantRequest,
    draws_record,
    grant_checked,
    grant_create,
    grant_void,
    grants_expire,
    grants_lock,
    money_checked,
    plan_credits_grant,
    plan_credits_grant_running,
    returns_record,
)
from billing.credits.services.top_ups import (
    PUSH_TOP_UP,
    auto_top_up_fire,
    auto_top_up_remove,
    auto_top_up_set,
    top_up_create,
    top_up_moved,
    top_up_paid,
)

__all__ = [
    "PUSH_TOP_UP",
    "GrantRequest",
    "auto_top_up_fire",
    "auto_top_up_remove",
    "auto_top_up_set",
    "draws_record",
    "grant_checked",
    "grant_create",
    "grant_void",
    "grants_expire",
    "grants_lock",
    "money_checked",
    "plan_credits_grant",
    "plan_credits_grant_running",
    "returns_record",
    "top_up_create",
    "top_up_moved",
    "top_up_paid",
]
