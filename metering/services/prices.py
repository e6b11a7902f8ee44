"""Writes of prices: operator overrides, and the repricing of unpriced events."""

from typing import Any

from django.db import transaction

from config.errors import ApiError, ErrorDetail
from config.queue import enqueue_on_commit
from metering.fields import current_transaction_id
from metering.models import CostSource, ModelPriceOverride, UsageEvent
from metering.pricing import PriceBook, Tokens


def price_override_save(*, override: ModelPriceOverride) -> ModelPriceOverride:
    """Save an operator price and, once committed, price the events it covers that are
    still unpriced (the task takes the override's id)."""
    from metering.tasks import price_unpriced_events

    override.full_clean()
    with transaction.atomic():
        override.save()
        enqueue_on_commit(price_unpriced_events, override.pk)
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
                    tokens=Tokens.of(event),
                )
                if priced.cost is not None:
                    event.cost = priced.cost
                    event.cost_source = priced.source
                    event.price_version = priced.version
                    # The watermark: a close that saw the call unpriced did not bill its
                    # cost; the first close that sees this transaction does
                    # (billing/watermark.py).
                    event.priced_xid = current_transaction_id()
                    updates.append(event)
            UsageEvent.objects.bulk_update(
                updates, ["cost", "cost_source", "price_version", "priced_xid"]
            )
        priced_total += len(updates)
        if len(batch) < batch_size:
            return priced_total
        last_pk = batch[-1].pk
