"""Closing a month for many customers: time against one GROUP BY over the same month.

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/close.py`
(embedded PostgreSQL) or with DATABASE_URL set. In a scratch database of its own
(payback_bench_close) it loads events and outcomes for customers in one month (set-based
SQL), then times:
  - the baseline: one GROUP BY customer over the month's events (median of three);
  - closing every customer's month into invoices (periods_due_close, as
    `manage.py close_periods --processes N` does: many customers per transaction, one
    process per core; Stripe not configured, so nothing is pushed);
  - closing again: nothing is created;
  - the margin breakdown of every invoice (what the task after each close does:
    billing/analytics/services.py), in chunks of 5,000 in one process per core;
  - closing the next month after late facts for the closed one (--late-customers of
    them, 10% by default, get 10 calls and 2 successes each after October's close): the
    late usage read by commit order and billed as the difference of two ratings;
and reports peak RSS of this process. Writes bench/results/close.json. Targets (issue 4):
close ≤ 15× the baseline, second close ≤ 0.5× the first, RSS bounded.
Options: --customers (10,000), --events (1,000,000), --outcomes (100,000),
--late-customers (1,000).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scratch import scratch_database  # bench/scratch.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BENCH_DB = "payback_bench_close"
MONTH = datetime(2026, 10, 1, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 11, 1, tzinfo=UTC)
NEXT_MONTH_END = datetime(2026, 12, 1, tzinfo=UTC)


def load(customers: int, events: int, outcomes: int) -> None:
    from django.db import connection

    from billing.plans.services import plans_load
    from metering.services import event_partitions_ensure

    # The month's partition, so that its events are not routed to the default partition.
    event_partitions_ensure(now=MONTH, ahead=1)
    plans_load(
        document={
            "plans": [
                {
                    "code": "bench",
                    "name": "Bench",
                    "currency": "USD",
                    "base_fee": "10",
                    "premium_seat_fee": "5",
                    "seat_mode": "active",
                    "outcomes": [{"type": "resolution", "unit_price": "0.99", "included": 5}],
                    "token_pass_through": [{"feature": "", "markup": "0.2"}],
                }
            ]
        }
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_customer (external_id, name, email, currency, metadata,
                                           created_at, updated_at)
            SELECT 'c-' || i, '', '', 'USD', '{}', now(), now()
            FROM generate_series(1, %(customers)s) AS i;
            INSERT INTO billing_subscription (customer_id, plan_id, premium_seats, started_at,
                billing_anchor_day, timezone, created_at, updated_at)
            SELECT c.id, p.id, 0, %(month)s, 1, 'UTC', now(), now()
            FROM metering_customer c, billing_plan p;
            INSERT INTO outcomes_outcome (external_id, customer_id, type, status, occurred_at,
                succeeded_at, succeeded_recorded_at, failed_at, value, value_currency,
                properties, created_at, updated_at)
            SELECT 'o-' || i, c.id, 'resolution',
                   CASE WHEN i %% 5 = 0 THEN 'failed' ELSE 'succeeded' END,
                   %(month)s + (i %% 700) * interval '1 hour',
                   CASE WHEN i %% 5 = 0 THEN NULL
                        ELSE %(month)s + (i %% 700) * interval '1 hour' END,
                   CASE WHEN i %% 5 = 0 THEN NULL
                        ELSE %(month)s + (i %% 700) * interval '1 hour' END,
                   CASE WHEN i %% 5 = 0 THEN %(month)s END, NULL, '', '{}', now(), now()
            FROM generate_series(1, %(outcomes)s) AS i
            JOIN metering_customer c ON c.external_id = 'c-' || (1 + i %% %(customers)s);
            INSERT INTO metering_usageevent (event_id, customer_id, "timestamp", received_at,
                provider, model, input_tokens, output_tokens, cache_read_tokens,
                cache_write_tokens, cost, cost_source, price_version, outcome_ref, end_user,
                feature, tier, prompt_hash, cache_hit, properties)
            SELECT 'e-' || i, c.id, %(month)s + (i %% 700) * interval '1 hour',
                   %(month)s + (i %% 700) * interval '1 hour', 'openai', 'gpt-4o-mini',
                   1000, 100, 0, 0, 0.000210, 'catalog', '', 'o-' || (1 + i %% %(outcomes)s),
                   'u-' || (i %% 7), '', CASE WHEN i %% 3 = 0 THEN 'premium' ELSE '' END,
                   '', NULL, '{}'
            FROM generate_series(1, %(events)s) AS i
            JOIN metering_customer c ON c.external_id = 'c-' || (1 + i %% %(customers)s);
            ANALYZE;
            """,
            {"customers": customers, "events": events, "outcomes": outcomes, "month": MONTH},
        )


def late_facts(customers: int) -> None:
    """After October's close: 10 calls and 2 successes of October for each of the first
    `customers` customers, committed now (late by commit order)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_usageevent (event_id, customer_id, "timestamp", received_at,
                provider, model, input_tokens, output_tokens, cache_read_tokens,
                cache_write_tokens, cost, cost_source, price_version, outcome_ref, end_user,
                feature, tier, prompt_hash, cache_hit, properties)
            SELECT 'late-' || c.id || '-' || n, c.id, %(month)s + n * interval '1 day', now(),
                   'openai', 'gpt-4o-mini', 1000, 100, 0, 0, 0.000210, 'catalog', '', '',
                   'u-late', '', '', '', NULL, '{}'
            FROM metering_customer c CROSS JOIN generate_series(1, 10) AS n
            WHERE c.id <= %(customers)s;
            INSERT INTO outcomes_outcome (external_id, customer_id, type, status, occurred_at,
                succeeded_at, succeeded_recorded_at, value, value_currency, properties,
                created_at, updated_at)
            SELECT 'late-o-' || c.id || '-' || n, c.id, 'resolution', 'succeeded',
                   %(month)s + n * interval '1 day', %(month)s + n * interval '1 day', now(),
                   NULL, '', '{}', now(), now()
            FROM metering_customer c CROSS JOIN generate_series(1, 2) AS n
            WHERE c.id <= %(customers)s;
            ANALYZE;
            """,
            {"customers": customers, "month": MONTH},
        )


def _reconcile_chunk(invoice_ids: list[int]) -> int:
    from billing.analytics.services import invoices_reconcile

    return invoices_reconcile(invoice_ids=invoice_ids)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--outcomes", type=int, default=100_000)
    parser.add_argument("--late-customers", type=int, default=1_000)
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = scratch_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    os.environ["STRIPE_API_KEY"] = ""
    # The close enqueues the breakdown task; here nothing consumes it (timed below).
    os.environ["CELERY_BROKER_URL"] = "memory://"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from billing.invoicing.models import Invoice, InvoiceLine
    from billing.invoicing.services import periods_due_close

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    load(options.customers, options.events, options.outcomes)
    print(
        f"loaded {options.events:,} events, {options.outcomes:,} outcomes for "
        f"{options.customers:,} customers in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    baselines = []
    with connection.cursor() as cursor:
        for _ in range(3):  # the median of three: the first run also warms the cache
            started = time.perf_counter()
            cursor.execute(
                "SELECT customer_id, count(*), sum(cost) FROM metering_usageevent "
                'WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY customer_id',
                [MONTH, NEXT_MONTH],
            )
            cursor.fetchall()
            baselines.append(time.perf_counter() - started)
    baseline = sorted(baselines)[1]

    as_of = NEXT_MONTH + timedelta(hours=2)

    def close_all() -> tuple[float, int]:
        begun = time.perf_counter()
        closed = periods_due_close(as_of=as_of, processes=os.cpu_count() or 1)
        return time.perf_counter() - begun, closed

    first, closed = close_all()
    invoices = Invoice.objects.count()
    second, closed_again = close_all()
    invoices_after_second = Invoice.objects.count()
    invoice_ids = list(Invoice.objects.order_by("pk").values_list("pk", flat=True))
    chunks = [invoice_ids[i : i + 5000] for i in range(0, len(invoice_ids), 5000)]
    connection.close()  # the processes open their own
    begun = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        reconciled = sum(pool.map(_reconcile_chunk, chunks))
    breakdown = time.perf_counter() - begun
    connection.close()
    late_facts(options.late_customers)
    begun = time.perf_counter()
    next_closed = periods_due_close(
        as_of=NEXT_MONTH_END + timedelta(hours=2), processes=os.cpu_count() or 1
    )
    next_close = time.perf_counter() - begun
    late_lines = InvoiceLine.objects.exclude(source_invoice=None).count()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The closing processes (forked, one per core): the largest of them.
    worker_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    results = {
        "customers": options.customers,
        "events": options.events,
        "outcomes": options.outcomes,
        "baseline_group_by_s": baseline,
        "first_close_s": first,
        "periods_closed": closed,
        "invoices": invoices,
        "second_close_s": second,
        "invoices_made_second_time": closed_again,
        "invoices_after_second": invoices_after_second,
        "close_to_baseline": first / baseline,
        "breakdown_s": breakdown,
        "invoices_reconciled": reconciled,
        "breakdown_to_baseline": breakdown / baseline,
        "second_to_first": second / first,
        "late_customers": options.late_customers,
        "next_close_s": next_close,
        "next_close_to_baseline": next_close / baseline,
        "late_lines": late_lines,
        "peak_rss_mb": peak_rss_mb,
        "closing_process_peak_rss_mb": worker_rss_mb,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "close.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'measure':40} {'value':>14}   target")
    print(f"{'baseline: GROUP BY customer, one month':40} {baseline:12.2f} s")
    print(
        f"{'close every customer month':40} {first:12.2f} s   ≤ 15× baseline: "
        f"{first / baseline:.1f}×  ({closed:,} invoices, "
        f"{first / max(closed, 1) * 1000:.2f} ms each)"
    )
    print(
        f"{'close again':40} {second:12.2f} s   ≤ 0.5× first: {second / first:.2f}×  "
        f"(made: {closed_again}, invoices {results['invoices_after_second']:,})"
    )
    print(
        f"{'margin breakdown of every invoice':40} {breakdown:12.2f} s   "
        f"{breakdown / baseline:.1f}× baseline ({reconciled:,} invoices, after the close)"
    )
    print(
        f"{'close the next month, late facts':40} {next_close:12.2f} s   "
        f"{next_close / baseline:.1f}× baseline ({next_closed:,} invoices; "
        f"{options.late_customers:,} customers with late facts: {late_lines:,} late lines)"
    )
    print(f"{'peak RSS of this process':40} {peak_rss_mb:12.0f} MB")
    print(f"{'peak RSS of a closing process':40} {worker_rss_mb:12.0f} MB")
    print(f"written to {RESULTS / 'close.json'}")


if __name__ == "__main__":
    main()
