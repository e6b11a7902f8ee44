"""Reads of the metering app. Aggregates run in SQL, never as Python loops over events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from common.replicas import reading
from metering.models import CostSource, Customer, EventKey, ModelPriceOverride, UsageEvent
from metering.services.partitions import DEFAULT_PARTITION, EVENTS_TABLE, Month, partition_month


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


def customer_by_id(*, customer_id: int) -> Customer:
    """The customer a signed link names (its own id: never an external id in a URL)."""
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise Http404(f"No customer {customer_id}.")
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


def _totals(rows: list[dict[str, Any]]) -> UsageTotals:
    """Add up aggregate rows (one per provider, model and feature) into one total."""
    costs = [row["cost"] for row in rows if row["cost"] is not None]
    unpriced = int(sum(row["unpriced_calls"] for row in rows))
    return UsageTotals(
        calls=int(sum(row["calls"] for row in rows)),
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
    # Distinct end users with `tier: "premium"` calls: the active premium seats.
    premium_users: int


def customer_events(*, customer: Customer, start: datetime, end: datetime) -> QuerySet[UsageEvent]:
    """The customer's events in the half-open window [start, end). (What a close saw of
    them is billing's to say: billing/invoicing/watermark.py.)"""
    return UsageEvent.objects.filter(customer=customer, timestamp__gte=start, timestamp__lt=end)


# The window's calls in one scan: grouped by provider, model, feature and premium user
# (NULL for the rest), then, from that small result, the totals per (provider, model,
# feature) and the distinct premium users (the row whose provider is NULL).
_USAGE_SQL = """
WITH grouped AS MATERIALIZED (
    SELECT provider, model, feature,
           CASE WHEN tier = 'premium' AND end_user <> '' THEN end_user END AS premium_user,
           count(*) AS calls, sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens,
           sum(cache_write_tokens) AS cache_write_tokens, sum(cost) AS cost,
           count(*) FILTER (WHERE cost_source = 'unpriced') AS unpriced_calls
    FROM metering_usageevent
    WHERE customer_id = %(customer)s AND "timestamp" >= %(start)s AND "timestamp" < %(end)s
    GROUP BY 1, 2, 3, 4
)
SELECT provider, model, feature, sum(calls) AS calls, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(cost) AS cost,
       sum(unpriced_calls) AS unpriced_calls, 0 AS premium_users
FROM grouped GROUP BY provider, model, feature
UNION ALL
SELECT NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, 0, count(DISTINCT premium_user)
FROM grouped WHERE premium_user IS NOT NULL
"""


def customer_usage(*, customer: Customer, start: datetime, end: datetime) -> CustomerUsage:
    """Totals, by model and by feature, and the distinct premium users, from one scan of
    the window's events (_USAGE_SQL), whose few rows are then added up. One scan beats
    one per breakdown, and beats GROUPING SETS, which PostgreSQL cannot run in parallel."""
    window = {"customer": customer.pk, "start": start, "end": end}
    with reading().cursor() as cursor:
        cursor.execute(_USAGE_SQL, window)
        names = [column.name for column in cursor.description]
        fetched = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    premium_users = int(sum(row["premium_users"] for row in fetched if row["provider"] is None))
    rows = [row for row in fetched if row["provider"] is not None]
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
        premium_users,
    )


def price_overrides(
    *, provider: str | None = None, model: str | None = None
) -> QuerySet[ModelPriceOverride]:
    overrides = ModelPriceOverride.objects.order_by("provider", "model", "-effective_from")
    if provider is not None:
        overrides = overrides.filter(provider=provider)
    if model is not None:
        overrides = overrides.filter(model=model)
    return overrides


def unpriced_models_with_override() -> list[tuple[str, str]]:
    """(provider, model) pairs that have unpriced events and an operator price by now."""
    unpriced = (
        UsageEvent.objects.filter(cost_source=CostSource.UNPRICED)
        .values_list("provider", "model")
        .distinct()
    )
    overridden = set(ModelPriceOverride.objects.values_list("provider", "model"))
    return [pair for pair in unpriced if pair in overridden]


@dataclass(frozen=True, slots=True)
class EventPartition:
    name: str
    month: Month | None  # None: the default partition
    attached: bool
    # PostgreSQL's estimate (reltuples) for a month; counted exactly for the default
    # partition, which should stay (nearly) empty.
    rows: int


def event_partitions() -> list[EventPartition]:
    """The events table's partitions, and month tables detached from it (kept for the
    operator to dump and drop), oldest first, the default partition last."""
    with reading().cursor() as cursor:
        cursor.execute(
            """SELECT c.relname, i.inhparent IS NOT NULL, greatest(c.reltuples, 0)::bigint
            FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
            WHERE c.relkind = 'r' AND c.relname LIKE %s""",
            [f"{EVENTS_TABLE}\\_%"],
        )
        rows = cursor.fetchall()
        cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}")  # noqa: S608 -- constant
        (in_default,) = cursor.fetchone()
    partitions = [
        EventPartition(name, month, attached, rows)
        for name, attached, rows in rows
        if (month := partition_month(name))
    ]
    partitions.sort(key=lambda partition: (partition.month, partition.name))
    return [*partitions, EventPartition(DEFAULT_PARTITION, None, True, in_default)]
