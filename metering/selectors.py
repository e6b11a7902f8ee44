"""Reads of the metering app. Aggregates run in SQL, never as Python loops over events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404

from metering.models import CostSource, Customer, EventKey, ModelPriceOverride, UsageEvent


def events_by_client_id(*, event_id: str) -> QuerySet[UsageEvent]:
    """The event with this client id, found through its key (customer and timestamp use
    the events' index; the events table has no index on the client id)."""
    key = EventKey.objects.filter(key=event_id).values("customer_id", "event_timestamp").first()
    if key is None:
        return UsageEvent.objects.none()
    return UsageEvent.objects.filter(
        customer_id=key["customer_id"], timestamp=key["event_timestamp"], event_id=event_id
    )


def customer_get(*, external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise Http404(f"No customer `{external_id}`.")
    return customer


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    # USD, the sum over priced calls; None when every call is unpriced. Unpriced calls are
    # counted apart, never as $0.
    cost: Decimal | None
    unpriced_calls: int


_ZERO_COST = Decimal("0")

_USAGE_AGGREGATES: dict[str, Any] = {
    "calls": Count("pk"),
    "input_tokens": Coalesce(Sum("input_tokens"), 0),
    "output_tokens": Coalesce(Sum("output_tokens"), 0),
    "cache_read_tokens": Coalesce(Sum("cache_read_tokens"), 0),
    "cache_write_tokens": Coalesce(Sum("cache_write_tokens"), 0),
    "cost": Sum("cost"),
    "unpriced_calls": Count("pk", filter=Q(cost_source=CostSource.UNPRICED)),
}


def _totals(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(
        calls=row["calls"],
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        cost=row["cost"] if row["cost"] is not None or row["unpriced_calls"] else _ZERO_COST,
        unpriced_calls=row["unpriced_calls"],
    )


@dataclass(frozen=True, slots=True)
class CustomerUsage:
    customer: Customer
    start: datetime
    end: datetime
    totals: UsageTotals
    by_model: list[tuple[str, str, UsageTotals]]
    by_feature: list[tuple[str, UsageTotals]]


def customer_events(*, customer: Customer, start: datetime, end: datetime) -> QuerySet[UsageEvent]:
    """The customer's events in the half-open window [start, end)."""
    return UsageEvent.objects.filter(customer=customer, timestamp__gte=start, timestamp__lt=end)


def customer_usage(*, customer: Customer, start: datetime, end: datetime) -> CustomerUsage:
    events = customer_events(customer=customer, start=start, end=end)
    totals = _totals(events.aggregate(**_USAGE_AGGREGATES))
    by_model = [
        (row["provider"], row["model"], _totals(row))
        for row in events.values("provider", "model")
        .annotate(**_USAGE_AGGREGATES)
        .order_by("provider", "model")
    ]
    by_feature = [
        (row["feature"], _totals(row))
        for row in events.values("feature").annotate(**_USAGE_AGGREGATES).order_by("feature")
    ]
    return CustomerUsage(customer, start, end, totals, by_model, by_feature)


def unpriced_models_with_override() -> list[tuple[str, str]]:
    """(provider, model) pairs that have unpriced events and an operator price by now."""
    unpriced = (
        UsageEvent.objects.filter(cost_source=CostSource.UNPRICED)
        .values_list("provider", "model")
        .distinct()
    )
    overridden = set(ModelPriceOverride.objects.values_list("provider", "model"))
    return [pair for pair in unpriced if pair in overridden]
