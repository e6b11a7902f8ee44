"""Cost of a call: explicit cost, then operator override, then genai-prices, else unpriced."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import genai_prices
import pytest
from django.utils import timezone
from genai_prices import data_snapshot

from metering.models import CostSource, UsageEvent
from metering.pricing import CATALOG_VERSION, PriceBook, Tokens, catalog_cost, quantize_cost
from tests.metering.factories import customer_create, event_payload, override_create

pytestmark = pytest.mark.django_db

NO_OVERRIDES = PriceBook([])


# The example: gpt-4o, 1M input tokens of which 200k cache reads, 500k output.
GPT_4O_CALL = {
    "provider": "openai",
    "model": "gpt-4o",
    "input_tokens": 1_000_000,
    "cache_read_tokens": 200_000,
    "output_tokens": 500_000,
}


def ingest(client, **fields):
    body = event_payload(customer_create(), **fields)
    response = client.post("/v1/events", body, format="json")
    assert response.status_code == 200, response.content
    return UsageEvent.objects.get(event_id=body["id"])


def test_gpt_4o_with_cache_reads_costs_exactly_7_25(client_with_key):
    event = ingest(client_with_key, **GPT_4O_CALL)
    # 800k uncached x $2.50 + 200k cached x $1.25 + 500k output x $10, per million.
    assert event.cost == Decimal("7.25")
    assert event.cost_source == CostSource.CATALOG
    assert event.price_version == CATALOG_VERSION


def test_explicit_cost_wins_over_override_and_catalog(client_with_key):
    override_create(
        provider="openai", model="gpt-4o", effective_from=datetime(2020, 1, 1, tzinfo=UTC)
    )
    event = ingest(client_with_key, provider="openai", model="gpt-4o", cost="0.123456789012")

    assert event.cost == Decimal("0.123456789012")
    assert event.cost_source == CostSource.EXPLICIT


def test_override_beats_genai_prices(client_with_key):
    override = override_create(
        provider="openai",
        model="gpt-4o",
        effective_from=timezone.now() - timedelta(days=2),
        input_per_mtok="1.00",
        output_per_mtok="2.00",
        cache_read_per_mtok="0.50",
    )
    event = ingest(client_with_key, **GPT_4O_CALL)
    # 800k x $1 + 200k x $0.50 + 500k x $2, per million.
    assert event.cost == Decimal("1.9")
    assert event.cost_source == CostSource.OVERRIDE
    assert event.price_version == f"override:{override.pk}"


def test_override_applies_only_from_its_effective_date(client_with_key):
    override_create(
        provider="openai", model="gpt-4o", effective_from=timezone.now() - timedelta(hours=1)
    )
    before = ingest(
        client_with_key,
        provider="openai",
        model="gpt-4o",
        timestamp=(timezone.now() - timedelta(days=1)).isoformat(),
    )
    assert before.cost_source == CostSource.CATALOG


def test_newest_override_valid_at_the_timestamp_wins():
    old = override_create(effective_from=datetime(2026, 1, 1, tzinfo=UTC), input_per_mtok="1")
    override_create(effective_from=datetime(2026, 6, 1, tzinfo=UTC), input_per_mtok="3")
    book = PriceBook.for_models({(old.provider, old.model)})
    tokens = Tokens(input=1_000_000, output=0, cache_read=0, cache_write=0)

    def price_at(month: int) -> Decimal | None:
        return book.price(
            provider=old.provider,
            model=old.model,
            timestamp=datetime(2026, month, 15, tzinfo=UTC),
            tokens=tokens,
        ).cost

    assert price_at(3) == Decimal("1")
    assert price_at(7) == Decimal("3")


def test_cache_prices_default_to_the_input_price():
    override = override_create(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC), input_per_mtok="2", output_per_mtok="4"
    )
    priced = PriceBook.for_models({(override.provider, override.model)}).price(
        provider=override.provider,
        model=override.model,
        timestamp=datetime(2026, 2, 1, tzinfo=UTC),
        tokens=Tokens(input=1_000_000, output=1_000_000, cache_read=300_000, cache_write=200_000),
    )
    assert priced.cost == Decimal("6")


def test_unknown_model_is_unpriced_never_zero(client_with_key):
    event = ingest(client_with_key, provider="self-hosted", model="llama-3-8b-distilled")

    assert event.cost is None
    assert event.cost_source == CostSource.UNPRICED


def test_event_without_model_is_unpriced(client_with_key):
    body_fields = {"provider": "openai"}
    event = ingest(client_with_key, **body_fields, model=None)
    assert event.cost_source == CostSource.UNPRICED


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-pro"),
        ("openai", "gpt-3.5-turbo"),
    ],
)
def test_catalog_cost_equals_genai_prices_own_calculation(provider, model):
    """The fast path (flat rates) and the fallback (tiers) both agree with genai-prices."""
    timestamp = datetime(2026, 6, 1, tzinfo=UTC)
    for tokens in [
        Tokens(1234, 567, 89, 10),
        Tokens(300_000, 1000, 100_000, 0),
        Tokens(0, 0, 0, 0),
    ]:
        usage = genai_prices.Usage(
            input_tokens=tokens.input,
            output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read,
            cache_write_tokens=tokens.cache_write,
        )
        expected = genai_prices.calc_price(
            usage, model, provider_id=provider, genai_request_timestamp=timestamp
        ).total_price
        assert catalog_cost(provider, model, timestamp, tokens) == expected


def test_fast_path_agrees_with_genai_prices_across_the_catalog():
    timestamp = datetime(2026, 6, 1, tzinfo=UTC)
    tokens = Tokens(input=123_457, output=54_321, cache_read=20_000, cache_write=3_000)
    usage = genai_prices.Usage(
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
    )
    checked = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            try:
                expected = genai_prices.calc_price(
                    usage, model.id, provider_id=provider.id, genai_request_timestamp=timestamp
                )
            except (LookupError, ValueError):  # ids that are not refs; non-token pricing
                continue
            ours = catalog_cost(provider.id, model.id, timestamp, tokens)
            assert ours == quantize_cost(expected.total_price), (provider.id, model.id)
            checked += 1
    assert checked > 500
