"""The margin report and the dashboard over a month of many customers, live and closed,
against one GROUP BY over the same month.

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/margins.py`
(embedded PostgreSQL) or with DATABASE_URL set. In a scratch database of its own
(payback_bench_margins) it loads bench/close.py's month (customers on one plan with a
base fee, premium seats, outcomes and pass-through; events and outcomes by set-based
SQL; the month is before the running rollup's horizon, which migrate sets, so its
triggers sum the calls into the rollup as they load, as a fold would), then times (median
of three each):
  - the baseline: one GROUP BY customer over the month's events;
  - margins by customer and by model while the month is open (every customer's period
    rated live), and the dashboard's page then (no target);
  - the same once the month is closed (read from the reconciliation cells);
  - the dashboard's data for the month (closed): everything its page computes (the
    charts, the headline with the previous window, the waterfall), its independent reads
    side by side as the page runs them (the baseline's GROUP BY runs on three processes
    too: PostgreSQL's parallel workers); target (issue 18): at most 2× the baseline; and
    the same reads one after another, for the work they are;
  - a customer's page (its periods, breakdowns, invoices, preview); target: 100 ms.
Writes bench/results/margins.json.
Options: --customers (10,000), --events (1,000,000), --outcomes (100,000).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from close import MONTH, NEXT_MONTH, load  # bench/close.py: the same month of data
from scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BENCH_DB = "payback_bench_margins"


def median_seconds(run: Callable[[], object], times: int = 3) -> float:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--outcomes", type=int, default=100_000)
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = scratch_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    os.environ["STRIPE_API_KEY"] = ""
    os.environ["CELERY_BROKER_URL"] = "memory://"  # the breakdown is made below
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from billing.analytics.selectors.customers import customer_economics
    from billing.analytics.selectors.dashboard import READERS, dashboard_page
    from billing.analytics.selectors.margins import MarginFilters, margins_report
    from billing.analytics.services import invoices_reconcile
    from billing.invoicing.models import Invoice
    from billing.invoicing.services import periods_due_close
    from metering.models import Customer

    call_command("migrate", verbosity=0)
    load(options.customers, options.events, options.outcomes)
    print(f"loaded {options.events:,} events for {options.customers:,} customers", flush=True)
    # As a gunicorn worker does once Django is loaded (config/gunicorn.py): what this
    # process holds now is not walked at each full collection while the pages are timed.
    gc.freeze()

    def baseline() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT customer_id, count(*), sum(cost) FROM metering_usageevent "
                'WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY customer_id',
                [MONTH, NEXT_MONTH],
            )
            cursor.fetchall()

    def report(group_by: str, now: object) -> Callable[[], object]:
        return lambda: margins_report(
            start=MONTH, end=NEXT_MONTH, group_by=group_by, filters=MarginFilters(), now=now
        )

    during = MONTH + timedelta(days=29, hours=12)  # the month is still open
    after = NEXT_MONTH + timedelta(hours=2)
    figures = {"baseline_group_by_s": median_seconds(baseline)}
    figures["open_by_customer_s"] = median_seconds(report("customer", during))
    figures["open_by_model_s"] = median_seconds(report("model", during))
    # The page an operator opens on the month's last day (no target: for the record).
    figures["dashboard_open_s"] = median_seconds(
        lambda: dashboard_page(start=MONTH, end=NEXT_MONTH, now=during, filters=MarginFilters())
    )
    periods_due_close(as_of=after, processes=os.cpu_count() or 1)
    invoices_reconcile(invoice_ids=list(Invoice.objects.values_list("pk", flat=True)))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have, after a month's invoices
    figures["closed_by_customer_s"] = median_seconds(report("customer", after))
    figures["closed_by_model_s"] = median_seconds(report("model", after))

    def page(readers: int) -> Callable[[], object]:
        """What the dashboard's page computes for the month (billing/analytics/views.py)."""
        return lambda: dashboard_page(
            start=MONTH, end=NEXT_MONTH, now=after, filters=MarginFilters(), readers=readers
        )

    figures["dashboard_closed_s"] = median_seconds(page(READERS))
    figures["dashboard_in_turn_s"] = median_seconds(page(1))  # the same reads one by one
    customer = Customer.objects.order_by("pk")[options.customers // 2]
    figures["customer_page_s"] = median_seconds(
        lambda: customer_economics(customer=customer, now=after)
    )
    base = figures["baseline_group_by_s"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "margins.json").write_text(
        json.dumps({"customers": options.customers, "events": options.events, **figures}, indent=2)
    )
    print(f"\n{'measure (median of 3)':44} {'seconds':>8}   × baseline")
    for name, seconds in figures.items():
        print(f"{name:44} {seconds:8.2f}   {seconds / base:6.1f}×")
    dashboard = figures["dashboard_closed_s"] / base
    print(f"dashboard: {dashboard:.1f}× the baseline (target ≤ 2×)")
    print(f"customer page: {figures['customer_page_s'] * 1000:.0f} ms (target ≤ 100 ms)")
    print(f"written to {RESULTS / 'margins.json'}")


if __name__ == "__main__":
    main()
