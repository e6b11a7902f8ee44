"""Writes of prices: operator overrides, and the repricing of unpriced events."""

from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from api.errors import ApiError, ErrorDetail
from common.queue import enqueue_on_commit
from metering.models import ModelPriceOverride
from metering.pricing import PriceBook, Tokens

PRICE_UNPRICED_EVENTS = "metering.tasks.price_unpriced_events"  # by name: services import no task


def price_override_save(*, override: ModelPriceOverride) -> ModelPriceOverride:
    """Save an operator price and, once committed, price the events it covers that are
    still unpriced (the task takes the override's id)."""
    override.full_clean()
    with transaction.atomic():
        override.save()
        enqueue_on_commit(PRICE_UNPRICED_EVENTS, override.pk)
    return override


_PRICES = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


def price_override_create(**fields: Any) -> tuple[ModelPriceOverride, bool]:
    """Add an operator price (the API's create): saved as the admin saves one, pricing the
    unpriced calls it covers. The same prices again for the same model and moment are a
    duplicate (False); other prices for them are refused (409): calls priced by an
    override keep the price they got."""
    sent = ModelPriceOverride(**fields)
    found = ModelPriceOverride.objects.filter(
        provider=sent.provider, model=sent.model, effective_from=sent.effective_from
    ).first()
    if found is None:
        return price_override_save(override=sent), True
    if any(getattr(found, name) != getattr(sent, name) for name in _PRICES):
        raise ApiError(
            [
                ErrorDetail(
                    field="effective_from",
                    code="conflict",
                    message=f"{sent.provider}:{sent.model} has other prices from "
                    f"{sent.effective_from.isoformat()}; add an override from a later moment.",
                )
            ],
            status_code=409,
        )
    return found, False


def events_price_unpriced(*, provider: str, model: str, batch_size: int = 20_000) -> int:
    """Give unpriced events of one model the price now known for their timestamp.

    Set-based: each batch is one SELECT of the rows (in timestamp order, so a batch lies in
    one or two monthly partitions and the UPDATE touches only those) and one UPDATE … FROM
    of their prices, computed here by the one pricing function (PriceBook). Row-by-row
    `bulk_update` took ~25 s per 5,000 rows on the partitioned table.

    Safe to run twice at once: each batch locks its rows (skipping rows another run holds)
    and the UPDATE re-checks they are still unpriced. Returns the number of events priced.
    """
    price_book = PriceBook.for_models({(provider, model)})
    priced_total = 0
    after: tuple[datetime, int] | None = None
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_UNPRICED_BATCH_SQL, _batch_params(provider, model, after, batch_size))
            batch = cursor.fetchall()
            priced = []
            for pk, timestamp, *token_counts in batch:
                found = price_book.price(
                    provider=provider,
                    model=model,
                    timestamp=timestamp,
                    tokens=Tokens(*token_counts),
                )
                if found.cost is not None:
                    priced.append((pk, timestamp, found.cost, found.source, found.version))
            if priced:
                pks, timestamps, costs, sources, versions = map(list, zip(*priced, strict=True))
                # The watermark: a close that saw the call unpriced did not bill its cost;
                # the first close that sees this transaction does (billing/invoicing/watermark.py).
                cursor.execute(
                    _PRICE_BATCH_SQL,
                    [pks, timestamps, costs, sources, versions, min(timestamps), max(timestamps)],
                )
        priced_total += len(priced)
        if len(batch) < batch_size:
            return priced_total
        after = (batch[-1][1], batch[-1][0])


# Rows of one model still unpriced, after a (timestamp, id) position: the partial index
# event_unpriced (provider, model, timestamp) serves the order and the lower bound.
_UNPRICED_BATCH_SQL = """
SELECT id, "timestamp", input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
FROM metering_usageevent
WHERE provider = %s AND model = %s AND cost_source = 'unpriced'
  AND "timestamp" >= %s AND ("timestamp", id) > (%s, %s)
ORDER BY "timestamp", id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
# One statement for the batch: the prices as arrays, joined on the primary key (id,
# timestamp); the timestamp bounds prune the partitions the batch does not touch.
_PRICE_BATCH_SQL = """
UPDATE metering_usageevent AS event
SET cost = priced.cost, cost_source = priced.cost_source,
    price_version = priced.price_version, priced_xid = pg_current_xact_id()
FROM unnest(%s::bigint[], %s::timestamptz[], %s::numeric[], %s::text[], %s::text[])
    AS priced (id, "timestamp", cost, cost_source, price_version)
WHERE event.id = priced.id AND event."timestamp" = priced."timestamp"
  AND event."timestamp" BETWEEN %s AND %s
  AND event.cost_source = 'unpriced'
"""
_BEFORE_ANY = (datetime(1, 1, 1, tzinfo=UTC), 0)


def _batch_params(
    provider: str, model: str, after: tuple[datetime, int] | None, size: int
) -> list[Any]:
    timestamp, pk = after or _BEFORE_ANY
    return [provider, model, timestamp, timestamp, pk, size]
