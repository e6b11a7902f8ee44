"""Writes of the metering app: customers, usage events, price overrides."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from config.errors import ApiError, ErrorDetail
from metering.models import CostSource, Customer, ModelPriceOverride, UsageEvent
from metering.pricing import PriceBook, Tokens
from metering.schemas import ValidEvent

logger = logging.getLogger(__name__)


# --- customers ----------------------------------------------------------------------------


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


# --- usage events -------------------------------------------------------------------------


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)


_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS metering_event_staging (
    ord integer, event_id text, fingerprint bytea, customer_id bigint,
    "timestamp" timestamptz, provider text, model text,
    input_tokens bigint, output_tokens bigint, cache_read_tokens bigint,
    cache_write_tokens bigint, cost numeric, cost_source text, price_version text,
    outcome_ref text, end_user text, feature text, tier text, prompt_hash text,
    cache_hit boolean, properties jsonb
) ON COMMIT DELETE ROWS
"""
_STAGING_COLUMNS = (
    "ord", "event_id", "fingerprint", "customer_id", "timestamp", "provider", "model",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost",
    "cost_source", "price_version", "outcome_ref", "end_user", "feature", "tier",
    "prompt_hash", "cache_hit", "properties",
)  # fmt: skip
_STAGING_TYPES = (
    "int4", "text", "bytea", "int8", "timestamptz", "text", "text",
    "int8", "int8", "int8", "int8", "numeric",
    "text", "text", "text", "text", "text", "text", "text",
    "bool", "jsonb",
)  # fmt: skip
_EVENT_COLUMNS = (
    "event_id", "customer_id", "timestamp", "provider", "model", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost", "cost_source",
    "price_version", "outcome_ref", "end_user", "feature", "tier", "prompt_hash",
    "cache_hit", "properties",
)  # fmt: skip
_COPY_SQL = (
    f"COPY metering_event_staging ({', '.join(_STAGING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
)
_QUOTED_EVENT_COLUMNS = ", ".join(f'"{c}"' for c in _EVENT_COLUMNS)
_STAGED_EVENT_COLUMNS = ", ".join(f'f."{c}"' for c in _EVENT_COLUMNS)

# One statement: the first row of each id claims its key (the unique guard), and only the
# rows whose key was claimed here become events. A concurrent transaction holding the same
# key makes ON CONFLICT wait for it, so two identical POSTs never both insert.
# Built from the constant column lists above, no input: hence the noqa.
_MERGE_SQL = f"""
WITH first AS (
    SELECT DISTINCT ON (event_id) * FROM metering_event_staging ORDER BY event_id, ord
), claimed AS (
    INSERT INTO metering_eventkey (key, fingerprint, customer_id, event_timestamp, created_at)
    SELECT event_id, fingerprint, customer_id, "timestamp", %(now)s FROM first
    ON CONFLICT (key) DO NOTHING
    RETURNING key
), inserted AS (
    INSERT INTO metering_usageevent ({_QUOTED_EVENT_COLUMNS}, received_at)
    SELECT {_STAGED_EVENT_COLUMNS}, %(now)s FROM first f JOIN claimed c ON c.key = f.event_id
)
SELECT f.ord FROM first f JOIN claimed c ON c.key = f.event_id
"""  # noqa: S608
# A separate statement, so that it sees keys committed by transactions ON CONFLICT waited on.
_CLASSIFY_SQL = """
SELECT s.ord, s.event_id, s.fingerprint = k.fingerprint
FROM metering_event_staging s JOIN metering_eventkey k ON k.key = s.event_id
ORDER BY s.ord
"""


def _resolve_customers(events: list[ValidEvent]) -> dict[str, int]:
    external_ids = {event.item.customer for event in events}
    found = dict(
        Customer.objects.filter(external_id__in=external_ids).values_list("external_id", "pk")
    )
    errors = [
        ErrorDetail(
            index=index,
            field="customer",
            code="unknown_customer",
            message=f"No customer `{event.item.customer}`; create it with PUT /v1/customers/<id>.",
        )
        for index, event in enumerate(events)
        if event.item.customer not in found
    ]
    if errors:
        raise ApiError(errors)
    return found


def _staging_rows(events: list[ValidEvent], customer_ids: dict[str, int]) -> list[tuple[Any, ...]]:
    models = {(e.item.provider or "", e.item.model or "") for e in events if e.cost is None}
    price_book = PriceBook.for_models(models)
    rows = []
    for ord_, event in enumerate(events):
        item = event.item
        priced = price_book.price(
            provider=item.provider or "",
            model=item.model or "",
            timestamp=event.timestamp,
            tokens=Tokens(
                item.input_tokens,
                item.output_tokens,
                item.cache_read_tokens,
                item.cache_write_tokens,
            ),
            explicit_cost=event.cost,
        )
        rows.append(
            (
                ord_,
                item.id,
                event.fingerprint,
                customer_ids[item.customer],
                event.timestamp,
                item.provider or "",
                item.model or "",
                item.input_tokens,
                item.output_tokens,
                item.cache_read_tokens,
                item.cache_write_tokens,
                priced.cost,
                priced.source.value,
                priced.version,
                item.outcome or "",
                item.user or "",
                item.feature or "",
                item.tier or "",
                item.prompt_hash or "",
                item.cache_hit,
                _RawJsonb(event.properties_json),
            )
        )
    return rows


class _RawJsonb(Jsonb):
    """JSON already encoded by msgspec: handed to PostgreSQL as is, not dumped again."""

    def __init__(self, encoded: bytes) -> None:
        super().__init__(None, dumps=lambda _: encoded)


def events_ingest(*, events: list[ValidEvent], now: datetime | None = None) -> IngestResult:
    """Store each event exactly once; report duplicates (same id, same payload) and
    conflicts (same id, other payload, original kept). All or nothing: the caller's answer
    is sent only after this commits."""
    now = now or timezone.now()
    customer_ids = _resolve_customers(events)
    rows = _staging_rows(events, customer_ids)
    result = IngestResult()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGING_DDL)
        # Normally empty (ON COMMIT DELETE ROWS), but a caller's outer transaction may not
        # have committed since the last batch on this connection.
        cursor.execute("DELETE FROM metering_event_staging")
        with cursor.cursor.copy(_COPY_SQL) as copy:
            copy.set_types(_STAGING_TYPES)
            for row in rows:
                copy.write_row(row)
        cursor.execute(_MERGE_SQL, {"now": now})
        accepted_ords = {row[0] for row in cursor.fetchall()}
        result.accepted = len(accepted_ords)
        if result.accepted < len(rows):
            cursor.execute(_CLASSIFY_SQL)
            for ord_, event_id, same_payload in cursor.fetchall():
                if ord_ in accepted_ords:
                    continue
                if same_payload:
                    result.duplicates += 1
                else:
                    result.conflicts.append(event_id)
    if result.conflicts:
        logger.info("ingest conflicts: %d ids with another payload", len(result.conflicts))
    return result


# --- prices -------------------------------------------------------------------------------


def price_override_save(*, override: ModelPriceOverride) -> ModelPriceOverride:
    """Save an operator price and, once committed, price the events it covers that are
    still unpriced (the task takes the override's id)."""
    from metering.tasks import price_unpriced_events

    override.full_clean()
    with transaction.atomic():
        override.save()
        price_unpriced_events.delay_on_commit(override.pk)
    return override


def events_price_unpriced(*, provider: str, model: str, batch_size: int = 5000) -> int:
    """Give unpriced events of one model the price now known for their timestamp.

    Safe to run twice at once: each batch locks its rows (skipping rows another run holds)
    and re-checks they are still unpriced. Returns the number of events priced.
    """
    priced_total = 0
    last_pk = 0
    price_book = PriceBook.for_models({(provider, model)})
    while True:
        with transaction.atomic():
            batch = list(
                UsageEvent.objects.select_for_update(skip_locked=True)
                .filter(
                    provider=provider, model=model, cost_source=CostSource.UNPRICED, pk__gt=last_pk
                )
                .order_by("pk")
                .only(
                    "pk",
                    "timestamp",
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                )[:batch_size]
            )
            updates: list[UsageEvent] = []
            for event in batch:
                priced = price_book.price(
                    provider=provider,
                    model=model,
                    timestamp=event.timestamp,
                    tokens=Tokens(
                        event.input_tokens,
                        event.output_tokens,
                        event.cache_read_tokens,
                        event.cache_write_tokens,
                    ),
                )
                if priced.cost is not None:
                    event.cost = priced.cost
                    event.cost_source = priced.source
                    event.price_version = priced.version
                    updates.append(event)
            UsageEvent.objects.bulk_update(updates, ["cost", "cost_source", "price_version"])
        priced_total += len(updates)
        if len(batch) < batch_size:
            return priced_total
        last_pk = batch[-1].pk
