"""Writes of customers."""

from typing import Any

from metering.models import Customer


def customer_upsert(
    *,
    external_id: str,
    name: str | None = None,
    email: str | None = None,
    currency: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[Customer, bool]:
    """Create the customer or update the fields given; returns (customer, created)."""
    defaults: dict[str, Any] = {}
    if name is not None:
        defaults["name"] = name
    if email is not None:
        defaults["email"] = email
    if currency is not None:
        defaults["currency"] = currency.upper()
    if metadata is not None:
        defaults["metadata"] = metadata
    return Customer.objects.update_or_create(external_id=external_id, defaults=defaults)
