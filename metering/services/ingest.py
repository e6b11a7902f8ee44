"""Exactly-once ingest of usage events.

The guard is `metering_eventkey`: one row per client event id (primary key), written in
the same statement as the event. One statement takes the first occurrence of each id in
the batch, claims its key with `INSERT … ON CONFLICT DO NOTHING`, and inserts only the
events whose key it claimed. A concurrent request holding the same key makes ON CONFLICT
wait for it, so two identical requests never both insert. Events that were not claimed
are then told apart by their fingerprint: same payload, a duplicate; another, a conflict.

Two ways in, one statement shape:
- small batches (the per-call POST) travel as parameters of that one statement, which
  in autocommit is its own transaction: one round trip;
- larger batches are copied (binary COPY) into a per-session temporary staging table,
  then merged from it, in one transaction: COPY is several times faster per row.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from psycopg.types.json import Jsonb

from api.batch import BatchResult
from api.errors import ApiError, ErrorDetail
from common import metrics
from common.metrics import batch_observed
from metering.pricing import (
    OVERRIDE_COLUMNS,
    OVERRIDES_OF_MODELS,
    PriceBook,
    Tokens,
    overrides_sql_params,
)
from metering.schemas import ValidEvent

logger = logging.getLogger(__name__)


# Staged columns: the events table's, plus the row's place in the batch and the payload's
# fingerprint (which goes to the key table).
_COLUMNS = (
    ("ord", "int4"), ("event_id", "text"), ("fingerprint", "bytea"), ("customer_id", "int8"),
    ("timestamp", "timestamptz"), ("provider", "text"), ("model", "text"),
    ("input_tokens", "int8"), ("output_tokens", "int8"), ("cache_read_tokens", "int8"),
    ("cache_write_tokens", "int8"), ("cost", "numeric"), ("cost_source", "text"),
    ("price_version", "text"), ("outcome_ref", "text"), ("end_user", "text"),
    ("feature", "text"), ("tier", "text"), ("prompt_hash", "text"), ("cache_hit", "bool"),
    ("properties", "jsonb"),
)  # fmt: skip
_EVENT_COLUMNS = [name for name, _ in _COLUMNS if name not in {"ord", "fingerprint"}]
_COLUMN_LIST = ", ".join(f'"{name}"' for name, _ in _COLUMNS)

_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS metering_event_staging ("
    + ", ".join(f'"{name}" {type_}' for name, type_ in _COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_SQL = f"COPY metering_event_staging ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = [type_ for _, type_ in _COLUMNS]

_VALUES_ROW = "(" + ", ".join(f"%s::{type_}" for _, type_ in _COLUMNS) + ")"


def _merge_sql(source: str) -> str:
    """The one statement that claims keys and inserts the claimed events; it returns the
    batch positions (`ord`) of the events it stored. Its last two parameters are the time
    of receipt."""
    event_columns = ", ".join(f'"{name}"' for name in _EVENT_COLUMNS)
    first_columns = ", ".join(f'f."{name}"' for name in _EVENT_COLUMNS)
    return f"""
WITH first AS (
    SELECT DISTINCT ON (event_id) * FROM {source} ORDER BY event_id, ord
), claimed AS (
    INSERT INTO metering_eventkey (key, fingerprint, customer_id, event_timestamp, created_at)
    SELECT event_id, fingerprint, customer_id, "timestamp", %s FROM first
    ON CONFLICT (key) DO NOTHING
    RETURNING key
), inserted AS (
    INSERT INTO metering_usageevent ({event_columns}, received_at)
    SELECT {first_columns}, %s FROM first f JOIN claimed c ON c.key = f.event_id
)
SELECT f.ord FROM first f JOIN claimed c ON c.key = f.event_id
"""  # noqa: S608 -- built from the constant column list and placeholders, never input


_MERGE_FROM_STAGING = _merge_sql("metering_event_staging")


@functools.cache
def _merge_from_values_sql(count: int) -> str:
    """The merge for `count` events given as parameters: one statement text per batch
    size, each prepared once per connection."""
    return _merge_sql(f"(VALUES {', '.join([_VALUES_ROW] * count)}) AS input({_COLUMN_LIST})")


# A separate statement, so that it sees the keys of transactions ON CONFLICT waited on.
_STORED_FINGERPRINTS_SQL = "SELECT key, fingerprint FROM metering_eventkey WHERE key = ANY(%s)"
_LOOKUP_SQL = f"""
SELECT 'customer', id, external_id, NULL, NULL::timestamptz, NULL::numeric, NULL::numeric,
       NULL::numeric, NULL::numeric
FROM metering_customer WHERE external_id = ANY(%s)
UNION ALL
SELECT 'override', {OVERRIDE_COLUMNS} {OVERRIDES_OF_MODELS}
"""  # noqa: S608 -- built from constants


class _RawJsonb(Jsonb):
    """JSON already encoded by msgspec: handed to PostgreSQL as is, not dumped again."""

    def __init__(self, encoded: bytes) -> None:
        super().__init__(None, dumps=lambda _: encoded)


def _prepared_cursor() -> psycopg.Cursor[Any]:
    """A psycopg cursor with server-side parameter binding on Django's connection.

    Django's own cursors bind parameters client-side, so PostgreSQL parses and plans the
    merge statement anew on every request, and arrays travel as text. This runs once per
    LLM call: here statements are prepared once per connection (`prepare=True`) and
    parameters travel in binary.
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _lookup(events: list[ValidEvent]) -> tuple[dict[str, int], PriceBook]:
    """The batch's customers and price overrides, in one round trip: one statement whose
    rows are either a customer or an override (a psycopg pipeline of two statements
    measured slower, its client-side bookkeeping costing more than the round trip)."""
    external_ids = sorted({event.item.customer for event in events})
    models = {(e.item.provider or "", e.item.model or "") for e in events if e.cost is None}
    with _prepared_cursor() as cursor:
        cursor.execute(_LOOKUP_SQL, [external_ids, *overrides_sql_params(models)], prepare=True)
        found: dict[str, int] = {}
        overrides = []
        for kind, *fields in cursor.fetchall():
            if kind == "customer":
                found[fields[1]] = fields[0]
            else:
                overrides.append(fields)
    price_book = PriceBook(overrides)
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
    return found, price_book


def _rows(
    events: list[ValidEvent], customer_ids: dict[str, int], price_book: PriceBook
) -> list[tuple[Any, ...]]:
    """One tuple per event, in _COLUMNS order, with its cost fixed now."""
    rows = []
    for ord_, event in enumerate(events):
        item = event.item
        provider, model = item.provider or "", item.model or ""
        priced = price_book.price(
            provider=provider,
            model=model,
            timestamp=event.timestamp,
            tokens=Tokens.of(item),
            explicit_cost=event.cost,
        )
        rows.append(
            (
                ord_, item.id, event.fingerprint, customer_ids[item.customer], event.timestamp,
                provider, model, item.input_tokens, item.output_tokens, item.cache_read_tokens,
                item.cache_write_tokens, priced.cost, priced.source.value, priced.version,
                item.outcome or "", item.user or "", item.feature or "", item.tier or "",
                item.prompt_hash or "", item.cache_hit, _RawJsonb(event.properties_json),
            )
        )  # fmt: skip
    return rows


_COST = 11  # the cost's place in a row of _rows


def _ensure_staging_table(*, nested: bool) -> None:
    """Create the session's staging table, once per database connection.

    Outside a transaction the DDL commits at once and the connection remembers it. Inside
    a caller's transaction (tests) it may yet be rolled back, so it is re-run each time.
    """
    with connection.cursor() as cursor:
        raw_connection = connection.connection
        if nested or not getattr(raw_connection, "payback_staging_ready", False):
            cursor.execute(_STAGING_DDL)
            raw_connection.payback_staging_ready = not nested


def _merge_from_values(rows: list[tuple[Any, ...]], now: datetime) -> set[int]:
    params = [value for row in rows for value in row]
    with _prepared_cursor() as cursor:
        cursor.execute(_merge_from_values_sql(len(rows)), [*params, now, now], prepare=True)
        return {ord_ for (ord_,) in cursor.fetchall()}


def _merge_from_staging(rows: list[tuple[Any, ...]], now: datetime) -> set[int]:
    nested = connection.in_atomic_block
    _ensure_staging_table(nested=nested)
    with _prepared_cursor() as cursor:
        if nested:
            # ON COMMIT DELETE ROWS empties the table at each commit, but the caller's
            # transaction may not have committed since the last batch on this connection.
            cursor.execute("DELETE FROM metering_event_staging")
        with cursor.copy(_COPY_SQL) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        # Not prepared: a prepared plan would outlive the temporary table it reads if the
        # connection's session were reset, and COPY dominates here anyway.
        cursor.execute(_MERGE_FROM_STAGING, [now, now])
        return {ord_ for (ord_,) in cursor.fetchall()}


def _classify_unclaimed(
    rows: list[tuple[Any, ...]], accepted: set[int], result: BatchResult
) -> None:
    unclaimed = [row for row in rows if row[0] not in accepted]
    with connection.cursor() as cursor:
        cursor.execute(_STORED_FINGERPRINTS_SQL, [sorted({row[1] for row in unclaimed})])
        stored = dict(cursor.fetchall())
    for row in unclaimed:
        event_id, fingerprint = row[1], row[2]
        if bytes(stored[event_id]) == fingerprint:
            result.duplicates += 1
        else:
            result.conflicts.append(event_id)


def events_ingest(*, events: list[ValidEvent], now: datetime | None = None) -> BatchResult:
    """Store each event exactly once; report duplicates (same id, same payload) and
    conflicts (same id, other payload; the original is kept). All or nothing, and
    committed before this returns, so the caller answers only for stored events."""
    now = now or timezone.now()
    customer_ids, price_book = _lookup(events)
    rows = _rows(events, customer_ids, price_book)
    if len(rows) <= settings.METERING_COPY_THRESHOLD:
        accepted = _merge_from_values(rows, now)  # one statement: its own transaction
    else:
        with transaction.atomic():
            accepted = _merge_from_staging(rows, now)
    # After the commit: the stored keys, ours and those of any concurrent request, are
    # committed and visible.
    result = BatchResult(accepted=len(accepted))
    if result.accepted < len(rows):
        _classify_unclaimed(rows, accepted, result)
    if result.conflicts:
        logger.info("ingest conflicts: %d ids with another payload", len(result.conflicts))
    batch_observed(
        metrics.EVENTS,
        accepted=result.accepted,
        duplicates=result.duplicates,
        conflicts=len(result.conflicts),
    )
    unpriced = sum(1 for row in rows if row[0] in accepted and row[_COST] is None)
    if unpriced:
        metrics.UNPRICED_EVENTS.inc(unpriced)
    reserved = {
        (customer_ids[event.item.customer], event.item.reservation)
        for event in events
        if event.item.reservation
    }
    if reserved:  # stored now or before (a retry): either way the usage is in
        import_string(settings.USAGE_SETTLES_RESERVATIONS)(reserved=reserved, now=now)
    return result
