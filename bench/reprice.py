"""Repricing after an outage: unpriced events of one model priced when its price arrives.

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/reprice.py`
(embedded PostgreSQL) or with DATABASE_URL set. In a scratch database of its own
(payback_bench_reprice) it loads --events unpriced calls of one self-hosted model over
three monthly partitions, a tenth of them before the price's start (they stay unpriced
and the repricing walks past them), then times:
  - the baseline: one plain UPDATE setting a cost on the same rows from their token
    counts in SQL (rolled back; the median of three): the floor of set-based work;
  - the repricing the price override's task runs (metering.services.events_price_unpriced,
    the price of each call from the one pricing function, written back per batch);
and checks every call from the price's start is priced with the pricing function's own
cost and none before it. Target (issue 13): ≥ 20,000 events/s. Writes
bench/results/reprice.json. Options: --events (200,000).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from scratch import scratch_database  # bench/scratch.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BENCH_DB = "payback_bench_reprice"
FIRST_MONTH = datetime(2026, 8, 1, tzinfo=UTC)
PRICE_FROM = FIRST_MONTH + timedelta(days=9)  # the first ~10 % of the calls come before
HOURS = 24 * 91  # three months of calls
PROVIDER, MODEL = "self-hosted", "bench-llama"


def load(events: int) -> None:
    from django.db import connection

    from metering.services import event_partitions_ensure

    event_partitions_ensure(now=FIRST_MONTH, ahead=2)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_customer (external_id, name, email, currency, metadata,
                                           created_at, updated_at)
            VALUES ('acme', '', '', 'USD', '{}', now(), now());
            INSERT INTO metering_usageevent (event_id, customer_id, "timestamp", received_at,
                provider, model, input_tokens, output_tokens, cache_read_tokens,
                cache_write_tokens, cost, cost_source, price_version, outcome_ref, end_user,
                feature, tier, prompt_hash, cache_hit, properties)
            SELECT 'e-' || i, c.id,
                   %(first)s + (i %% %(hours)s) * interval '1 hour' + (i %% 3600) * interval '1 s',
                   now(), %(provider)s, %(model)s, 500 + i %% 5000, 50 + i %% 700,
                   i %% 200, 0, NULL, 'unpriced', '', '', '', '', '', '', NULL, '{}'
            FROM generate_series(1, %(events)s) AS i, metering_customer c;
            ANALYZE metering_usageevent;
            """,
            {"events": events, "first": FIRST_MONTH, "hours": HOURS, "provider": PROVIDER,
             "model": MODEL},
        )  # fmt: skip


def baseline_update() -> float:
    """One UPDATE over the same rows with a cost computed in SQL, rolled back."""
    from django.db import connection, transaction

    runs = []
    for _ in range(3):
        with transaction.atomic(), connection.cursor() as cursor:
            began = time.perf_counter()
            cursor.execute(
                """UPDATE metering_usageevent
                   SET cost = input_tokens * 0.0000002 + output_tokens * 0.0000004,
                       cost_source = 'override', price_version = 'baseline',
                       priced_xid = pg_current_xact_id()
                   WHERE provider = %s AND model = %s AND cost_source = 'unpriced'
                     AND "timestamp" >= %s""",
                [PROVIDER, MODEL, PRICE_FROM],
            )
            runs.append(time.perf_counter() - began)
            transaction.set_rollback(True)
    return sorted(runs)[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = scratch_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    os.environ["CELERY_BROKER_URL"] = "memory://"
    import django

    django.setup()
    from django.core.management import call_command

    from metering.models import CostSource, ModelPriceOverride, UsageEvent
    from metering.pricing import PriceBook, Tokens
    from metering.services import events_price_unpriced

    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    load(options.events)
    print(f"loaded {options.events:,} unpriced calls in {time.perf_counter() - began:.1f} s")
    to_price = UsageEvent.objects.filter(timestamp__gte=PRICE_FROM).count()

    baseline = baseline_update()
    # The price, as an operator saves it (the task is called directly below).
    ModelPriceOverride.objects.create(
        provider=PROVIDER,
        model=MODEL,
        effective_from=PRICE_FROM,
        input_per_mtok=Decimal("0.20"),
        output_per_mtok=Decimal("0.40"),
        cache_read_per_mtok=Decimal("0.05"),
    )
    began = time.perf_counter()
    priced = events_price_unpriced(provider=PROVIDER, model=MODEL)
    seconds = time.perf_counter() - began

    unpriced = UsageEvent.objects.filter(cost_source=CostSource.UNPRICED)
    book = PriceBook.for_models({(PROVIDER, MODEL)})
    sample = UsageEvent.objects.filter(timestamp__gte=PRICE_FROM).order_by("?")[:1000]
    mismatches = sum(
        event.cost
        != book.price(
            provider=PROVIDER, model=MODEL, timestamp=event.timestamp, tokens=Tokens.of(event)
        ).cost
        for event in sample
    )
    results = {
        "events": options.events,
        "to_price": to_price,
        "priced": priced,
        "left_unpriced_before_the_price": unpriced.count(),
        "wrongly_left_unpriced": unpriced.filter(timestamp__gte=PRICE_FROM).count(),
        "sample_cost_mismatches": mismatches,
        "baseline_update_s": baseline,
        "reprice_s": seconds,
        "events_per_s": priced / seconds,
        "baseline_events_per_s": to_price / baseline,
        "reprice_to_baseline": seconds / baseline,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reprice.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'measure':44} {'value':>16}   target")
    print(
        f"{'baseline: one UPDATE, cost in SQL':44} {baseline:14.2f} s"
        f"   ({results['baseline_events_per_s']:,.0f} events/s)"
    )
    print(
        f"{'repricing (events_price_unpriced)':44} {seconds:14.2f} s"
        f"   {results['events_per_s']:,.0f} events/s (≥ 20,000); "
        f"{seconds / baseline:.1f}× the baseline"
    )
    print(
        f"{'priced / to price':44} {priced:>10,} / {to_price:,}   left before the price: "
        f"{results['left_unpriced_before_the_price']:,}, wrongly unpriced: "
        f"{results['wrongly_left_unpriced']}, sampled costs off: {mismatches}"
    )
    print(f"{'peak RSS of this process':44} {results['peak_rss_mb']:13.0f} MB")
    print(f"written to {RESULTS / 'reprice.json'}")


if __name__ == "__main__":
    main()
