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


def _totals(rows: list[dict[str, Any]]) -> UsageTotals:
    """Add up aggregate rows (one per provider, model and feature) into one total."""
    costs = [row["cost"] for row in rows if row["cost"] is not None]
    unpriced = sum(row["unpriced_calls"] for row in rows)
    return UsageTotals(
        calls=sum(row["calls"] for row in rows),
        input_tokens=int(sum(row["input_tokens"] for row in rows)),
        output_tokens=int(sum(row["output_tokens"] for row in rows)),
        cache_read_tokens=int(sum(row["cache_read_tokens"] for row in rows)),
        cache_write_tokens=int(sum(row["cache_write_tokens"] for row in rows)),
        cost=sum(costs, _ZERO_COST) if costs or not unpriced else None,
        unpriced_calls=unpriced,
    )


@dataclass(frozen=True, slots=True)
class CustomerUsage:
    customer: Customer
    start: datetime
    end: datetime
    totals: UsageTotals
    by_model: list[tuple[str, str, UsageTotals]]
    by_feature: list[tuple[str, UsageTotals]]


def customer_events(
    *, customer: Customer, start: datetime, end: datetime, received_until: datetime | None = None
) -> QuerySet[UsageEvent]:
    """The customer's events in the half-open window [start, end); with `received_until`,
    only those stored by then (what an invoice closed at that moment knew)."""
    events = UsageEvent.objects.filter(customer=customer, timestamp__gte=start, timestamp__lt=end)
    return events if received_until is None else events.filter(received_at__lte=received_until)


def customer_usage(
    *, customer: Customer, start: datetime, end: datetime, received_until: datetime | None = None
) -> CustomerUsage:
    """Totals, by model and by feature, from one aggregate query grouped by (provider,
    model, feature): one scan of the window's events, whose few rows are then added up
    (one scan, run in parallel by PostgreSQL, beats three, and beats GROUPING SETS, which
    PostgreSQL cannot run in parallel)."""
    events = customer_events(customer=customer, start=start, end=end, received_until=received_until)
    rows = list(events.values("provider", "model", "feature").annotate(**_USAGE_AGGREGATES))
    models: dict[tuple[str, str], list[dict[str, Any]]] = {}
    features: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        models.setdefault((row["provider"], row["model"]), []).append(row)
        features.setdefault(row["feature"], []).append(row)
    return CustomerUsage(
        customer,
        start,
        end,
        _totals(rows),
        [(provider, model, _totals(group)) for (provider, model), group in sorted(models.items())],
        [(feature, _totals(group)) for feature, group in sorted(features.items())],
    )


def unpriced_models_with_override() -> list[tuple[str, str]]:
    """(provider, model) pairs that have unpriced events and an operator price by now."""
    unpriced = (
        UsageEvent.objects.filter(cost_source=CostSource.UNPRICED)
        .values_list("provider", "model")
        .distinct()
    )
    overridden = set(ModelPriceOverride.objects.values_list("provider", "model"))
    return [pair for pair in unpriced if pair in overridden]
