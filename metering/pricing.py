"""What an LLM call cost, in USD, as an exact Decimal.

Precedence: an explicit `cost` sent with the event, then the operator's override valid at
the event's timestamp, then the genai-prices catalog at that timestamp; otherwise the
event is unpriced (cost NULL), never $0.

Token convention (OpenAI's and genai-prices'): `input_tokens` counts every prompt token,
cache reads and cache writes included, so uncached input = input - cache_read -
cache_write. A missing cache price means those tokens cost the plain input price.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import genai_prices
from django.db import connection
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider

from metering.models import CostSource

CATALOG_VERSION = f"genai-prices=={genai_prices.__version__}"
EXPLICIT_VERSION = "explicit"
COST_QUANTUM = Decimal("0.000000000001")  # the events' 12 decimals
TOKENS_PER_MTOK = Decimal(1_000_000)
# Wide enough for the largest product of token count (< 1e12) and price (< 1e12, six
# decimals) without rounding before quantize_cost.
PRICING_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_UP)

_TOKEN_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


def quantize_cost(value: Decimal) -> Decimal:
    """Round a USD cost to the events' 12 decimals, half up. The only rounding of a cost."""
    return value.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Tokens:
    input: int
    output: int
    cache_read: int
    cache_write: int

    @classmethod
    def of(cls, call: Any) -> Tokens:
        """The token counts of anything shaped like an event (an EventIn, a UsageEvent)."""
        return cls(call.input_tokens, call.output_tokens, call.cache_read_tokens,
                   call.cache_write_tokens)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    # The four rates in micro-USD per million tokens (= 1e-12 USD per token) when all are
    # whole numbers of micro-USD, which every known price is: then a cost is an exact
    # integer count of 1e-12 USD, computed with integers. None: the Decimal path.
    scaled: tuple[int, int, int, int] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        scaled = [rate.scaleb(6) for rate in (self.input, self.output, self.cache_read,
                                               self.cache_write)]  # fmt: skip
        exact = all(value == value.to_integral_value() for value in scaled)
        object.__setattr__(self, "scaled", tuple(int(value) for value in scaled) if exact else None)


@dataclass(frozen=True, slots=True)
class PricedCost:
    cost: Decimal | None
    source: CostSource
    version: str


UNPRICED = PricedCost(cost=None, source=CostSource.UNPRICED, version="")


def cost_from_rates(tokens: Tokens, rates: Rates) -> Decimal:
    uncached_input = tokens.input - tokens.cache_read - tokens.cache_write
    if rates.scaled is not None:
        input_rate, output_rate, cache_read_rate, cache_write_rate = rates.scaled
        picodollars = (
            uncached_input * input_rate
            + tokens.output * output_rate
            + tokens.cache_read * cache_read_rate
            + tokens.cache_write * cache_write_rate
        )
        return Decimal(picodollars).scaleb(-12)  # exact: no rounding happens here
    ctx = PRICING_CONTEXT
    total = ctx.add(
        ctx.add(
            ctx.multiply(uncached_input, rates.input), ctx.multiply(tokens.output, rates.output)
        ),
        ctx.add(
            ctx.multiply(tokens.cache_read, rates.cache_read),
            ctx.multiply(tokens.cache_write, rates.cache_write),
        ),
    )
    return quantize_cost(ctx.divide(total, TOKENS_PER_MTOK))


# --- operator overrides ---------------------------------------------------------------------

# The overrides of a set of models, as rows for PriceBook.from_rows. A superset of the
# (provider, model) pairs is fine: PriceBook.price matches both exactly.
OVERRIDE_COLUMNS = (
    "id, provider, model, effective_from, input_per_mtok, output_per_mtok, "
    "cache_read_per_mtok, cache_write_per_mtok"
)
OVERRIDES_OF_MODELS = (
    "FROM metering_modelpriceoverride WHERE provider = ANY(%s) AND model = ANY(%s)"
)
OVERRIDES_SQL = f"SELECT {OVERRIDE_COLUMNS} {OVERRIDES_OF_MODELS}"


def overrides_sql_params(models: set[tuple[str, str]]) -> list[list[str]]:
    return [sorted({provider for provider, _ in models}), sorted({model for _, model in models})]


def _override_rates(
    input_rate: Decimal,
    output_rate: Decimal,
    cache_read: Decimal | None,
    cache_write: Decimal | None,
) -> Rates:
    return Rates(
        input=input_rate,
        output=output_rate,
        cache_read=input_rate if cache_read is None else cache_read,
        cache_write=input_rate if cache_write is None else cache_write,
    )


# --- the genai-prices catalog -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CatalogModel:
    provider: Provider
    model: ModelInfo
    # Set when the model has one flat, time-invariant price: the common case, priced
    # without asking genai-prices per call.
    constant_rates: Rates | None


_catalog_models: dict[tuple[str, str], _CatalogModel | None] = {}
_catalog_rates: dict[int, tuple[ModelPrice, Rates | None]] = {}


def _catalog_model(provider: str, model: str) -> _CatalogModel | None:
    key = (provider, model)
    if key not in _catalog_models:
        try:
            found = data_snapshot.get_snapshot().find_provider_model(
                model, None, provider or None, None
            )
        except LookupError:
            _catalog_models[key] = None
        else:
            catalog_provider, model_info = found
            # Price variants (service tiers) apply only with a price context, which
            # payback never passes: the standard price is the one used, as in calc_price.
            constant = (
                _simple_rates(model_info.prices)
                if isinstance(model_info.prices, ModelPrice)
                else None
            )
            _catalog_models[key] = _CatalogModel(catalog_provider, model_info, constant)
    return _catalog_models[key]


def _simple_rates(model_price: ModelPrice) -> Rates | None:
    """Flat per-token rates of a catalog price, or None when it has tiers or a per-request
    fee: those go through genai-prices' own (slower, general) calculation."""
    cached = _catalog_rates.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1]
    values = model_price.__dict__
    rates: Rates | None = None
    flat = all(
        values.get(key) is None or isinstance(values.get(key), Decimal) for key in _TOKEN_PRICE_KEYS
    )
    if flat and values.get("requests_kcount") is None and values.get("input_mtok") is not None:
        input_rate = values["input_mtok"]
        rates = Rates(
            input=input_rate,
            output=values.get("output_mtok") or Decimal(0),
            cache_read=values.get("cache_read_mtok") or input_rate,
            cache_write=values.get("cache_write_mtok") or input_rate,
        )
    _catalog_rates[id(model_price)] = (model_price, rates)
    return rates


def catalog_cost(provider: str, model: str, timestamp: datetime, tokens: Tokens) -> Decimal | None:
    found = _catalog_model(provider, model)
    if found is None:
        return None
    if found.constant_rates is not None:
        return cost_from_rates(tokens, found.constant_rates)
    model_price = found.model.get_prices(timestamp)
    rates = _simple_rates(model_price)
    if rates is not None:
        return cost_from_rates(tokens, rates)
    usage = genai_prices.Usage(
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
    )
    calculation = found.model.calc_price(usage, found.provider, genai_request_timestamp=timestamp)
    return quantize_cost(calculation.total_price)


class PriceBook:
    """Prices a batch of calls: the overrides of the batch's models are read once."""

    def __init__(self, overrides: list[tuple[Any, ...]]) -> None:
        """`overrides`: rows shaped as OVERRIDES_SQL selects them."""
        # Newest first per model, so the first with effective_from <= timestamp wins.
        self._overrides: dict[tuple[str, str], list[tuple[datetime, int, Rates]]] = {}
        for row in sorted(overrides, key=lambda row: row[3], reverse=True):
            override_id, provider, model, effective_from, *prices = row
            self._overrides.setdefault((provider, model), []).append(
                (effective_from, override_id, _override_rates(*prices))
            )

    @classmethod
    def for_models(cls, models: set[tuple[str, str]]) -> PriceBook:
        if not models:
            return cls([])
        with connection.cursor() as cursor:
            cursor.execute(OVERRIDES_SQL, overrides_sql_params(models))
            return cls(cursor.fetchall())

    def price(
        self,
        *,
        provider: str,
        model: str,
        timestamp: datetime,
        tokens: Tokens,
        explicit_cost: Decimal | None = None,
    ) -> PricedCost:
        if explicit_cost is not None:
            return PricedCost(quantize_cost(explicit_cost), CostSource.EXPLICIT, EXPLICIT_VERSION)
        for effective_from, override_id, rates in self._overrides.get((provider, model), ()):
            if effective_from <= timestamp:
                return PricedCost(
                    cost_from_rates(tokens, rates), CostSource.OVERRIDE, f"override:{override_id}"
                )
        if model:
            cost = catalog_cost(provider, model, timestamp, tokens)
            if cost is not None:
                return PricedCost(cost, CostSource.CATALOG, CATALOG_VERSION)
        return UNPRICED
