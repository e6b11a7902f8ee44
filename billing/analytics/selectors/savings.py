"""The three cost levers, from SQL aggregates over the window's calls, exactly in Decimal:
caching (repeated prompts, application cache hits, provider cache-read discounts),
routing (a cheaper model for some calls) and distillation (an operator's self-hosted
model). Every what-if reprices calls aggregated per model and day with the price book
valid that day (metering/pricing.py); prices are linear in tokens, so the sum of the
aggregates' costs is the sum of the calls' costs (tiered catalog prices, which depend on
the size of one call, are priced on the day's total: an approximation for those few
models)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from common.replicas import reading
from metering.pricing import PriceBook, Tokens

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Substitution:
    """Calls of one model, repriced as if made with another."""

    provider: str
    model: str
    to_provider: str
    to_model: str


@dataclass(frozen=True, slots=True)
class WhatIf:
    substitution: Substitution
    calls: int
    cost_before: Decimal  # USD: what those calls cost
    cost_after: Decimal | None  # USD: what they would have cost; None: no price for the target

    @property
    def saving(self) -> Decimal | None:
        return None if self.cost_after is None else self.cost_before - self.cost_after


@dataclass(frozen=True, slots=True)
class CachingLevers:
    calls_with_prompt_hash: int
    repeated_calls: int  # calls whose prompt_hash was seen earlier in the window
    repeated_cost: Decimal  # USD spent on those repeats: what a prompt cache could save
    cache_hits: int  # calls marked cache_hit: served from the application's cache
    cache_hit_saving: Decimal  # what they would have cost at their model's price
    cache_read_tokens: int
    cache_read_saving: Decimal  # provider cache-read discounts earned (input price − cache price)


def _window(customer_id: int | None) -> str:
    return "AND customer_id = %(customer)s" if customer_id is not None else ""


def caching_levers(
    *, start: datetime, end: datetime, customer_id: int | None = None
) -> CachingLevers:
    params = {"start": start, "end": end, "customer": customer_id}
    scope = _window(customer_id)
    with reading().cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*), count(*) FILTER (WHERE seen > 1),
                   coalesce(sum(cost) FILTER (WHERE seen > 1), 0)
            FROM (SELECT cost, row_number() OVER (PARTITION BY customer_id, prompt_hash
                                                  ORDER BY "timestamp", id) AS seen
                  FROM metering_usageevent
                  WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s
                    AND prompt_hash <> '' {scope}) AS hashed
            """,  # noqa: S608 -- the scope is one of two constant strings
            params,
        )
        with_hash, repeated, repeated_cost = cursor.fetchone()
        cursor.execute(
            f"""
            SELECT provider, model, date_trunc('day', "timestamp") AS day,
                   count(*) FILTER (WHERE cache_hit),
                   coalesce(sum(input_tokens) FILTER (WHERE cache_hit), 0),
                   coalesce(sum(output_tokens) FILTER (WHERE cache_hit), 0),
                   coalesce(sum(cache_read_tokens) FILTER (WHERE cache_hit), 0),
                   coalesce(sum(cache_write_tokens) FILTER (WHERE cache_hit), 0),
                   coalesce(sum(cost) FILTER (WHERE cache_hit), 0),
                   coalesce(sum(cache_read_tokens), 0)
            FROM metering_usageevent
            WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s {scope}
              AND (cache_hit OR cache_read_tokens > 0)
            GROUP BY 1, 2, 3
            """,  # noqa: S608 -- as above
            params,
        )
        rows = cursor.fetchall()
    book = PriceBook.for_models({(row[0], row[1]) for row in rows})
    hits, hit_saving, read_tokens, read_saving = 0, ZERO, 0, ZERO
    for provider, model, day, n_hits, inp, out, cread, cwrite, hit_cost, all_reads in rows:
        at = datetime.combine(day.date(), time(12), tzinfo=day.tzinfo)
        hits += n_hits
        if n_hits:
            full = book.price(
                provider=provider,
                model=model,
                timestamp=at,
                tokens=Tokens(int(inp), int(out), int(cread), int(cwrite)),
            ).cost
            if full is not None:
                hit_saving += full - hit_cost
        read_tokens += int(all_reads)
        if all_reads:
            plain = book.price(
                provider=provider, model=model, timestamp=at, tokens=Tokens(int(all_reads), 0, 0, 0)
            ).cost
            cached = book.price(
                provider=provider,
                model=model,
                timestamp=at,
                tokens=Tokens(int(all_reads), 0, int(all_reads), 0),
            ).cost
            if plain is not None and cached is not None:
                read_saving += plain - cached
    return CachingLevers(
        with_hash, repeated, repeated_cost, hits, hit_saving, read_tokens, read_saving
    )


def what_if(
    *,
    substitution: Substitution,
    start: datetime,
    end: datetime,
    customer_id: int | None = None,
    max_input_tokens: int | None = None,
    feature: str | None = None,
) -> WhatIf:
    """Reprice the window's calls of one model (optionally only those under a token
    threshold, or of one feature) at another model's prices."""
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        "customer": customer_id,
        "provider": substitution.provider,
        "model": substitution.model,
        "max_input": max_input_tokens,
        "feature": feature,
    }
    with reading().cursor() as cursor:
        cursor.execute(
            f"""
            SELECT date_trunc('day', "timestamp"), count(*), sum(input_tokens),
                   sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
                   coalesce(sum(cost), 0)
            FROM metering_usageevent
            WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s {_window(customer_id)}
              AND provider = %(provider)s AND model = %(model)s
              AND (%(max_input)s::bigint IS NULL OR input_tokens <= %(max_input)s)
              AND (%(feature)s::text IS NULL OR feature = %(feature)s)
            GROUP BY 1
            """,  # noqa: S608 -- as above
            params,
        )
        days = cursor.fetchall()
    book = PriceBook.for_models({(substitution.to_provider, substitution.to_model)})
    calls, before, after, unpriced = 0, ZERO, ZERO, False
    for day, n, inp, out, cread, cwrite, cost in days:
        calls += n
        before += cost
        priced = book.price(
            provider=substitution.to_provider,
            model=substitution.to_model,
            timestamp=datetime.combine(day.date(), time(12), tzinfo=day.tzinfo),
            tokens=Tokens(int(inp), int(out), int(cread), int(cwrite)),
        )
        if priced.cost is None:
            unpriced = True
        else:
            after += priced.cost
    return WhatIf(substitution, calls, before, None if unpriced else after)
