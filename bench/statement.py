"""Statement benchmark: an invoice of 100,000 outcomes, as JSON pages and as one CSV.

Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/payback .venv/bin/python
bench/statement.py` (or through `config.embedded exec`). In a scratch database of its own
(payback_bench_statement): one customer on a graduated plan with an included allowance,
--outcomes successes in October (set-based SQL), closed into one invoice; then, in
process, through the API's own views (Django's test client, no network):
  (a) the baseline: one SELECT of the period's outcomes (id, type, time, value), fetched;
  (b) the CSV (`GET /v1/invoices/{id}/statement.csv`), streamed to the end: seconds,
      rows/s, ratio to (a), and the growth of the process's peak memory while streaming;
  (c) a JSON page of 1,000 outcomes at the start and at the end (offset outcomes − 1,000);
  (d) the PDF (`GET /v1/invoices/{id}/statement.pdf`): seconds, size, memory growth.
Writes bench/results/statement.json. Options: --outcomes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outcomes", type=int, default=100_000)
    options = parser.parse_args()
    os.environ["DATABASE_URL"] = scratch_database("payback_bench_statement")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    os.environ["STRIPE_API_KEY"] = ""
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["API_KEY_RATE_LIMIT"] = "0"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from rest_framework_api_key.models import APIKey

    from billing.invoicing.services import period_close
    from billing.plans.models import Plan, Subscription
    from billing.plans.services import plans_load
    from metering.models import Customer

    call_command("migrate", verbosity=0)
    plans_load(document={"plans": [{"code": "chat", "name": "Chat", "currency": "USD",
        "outcomes": [{"type": "resolution", "included": 100, "tier_mode": "graduated",
                      "tiers": [{"up_to": 10_000, "unit_price": "0.99"},
                                {"unit_price": "0.79"}]}]}]})  # fmt: skip
    customer = Customer.objects.create(external_id="acme")
    Subscription.objects.create(
        customer=customer, plan=Plan.objects.get(code="chat"), started_at=OCTOBER
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO outcomes_outcome (external_id, customer_id, type, status, occurred_at, "
            "succeeded_at, succeeded_recorded_at, value_currency, properties, created_at, "
            "updated_at) SELECT 'r-' || g, %s, 'resolution', 'succeeded', t, t, t, '', '{}', "
            "now(), now() FROM generate_series(1, %s) g, "
            "LATERAL (SELECT %s::timestamptz + g * interval '20 seconds') AS s(t)",
            [customer.pk, options.outcomes, OCTOBER],
        )
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    print(f"{options.outcomes:,} outcomes closed into invoice {invoice.pk} "
          f"(total {invoice.total / 100:,.2f} USD)", flush=True)  # fmt: skip
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {APIKey.objects.create_key(name='b')[1]}")

    def baseline() -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT external_id, type, succeeded_at, value FROM outcomes_outcome "
                "WHERE customer_id = %s ORDER BY succeeded_at, id",
                [customer.pk],
            )
            cursor.fetchall()
        return time.perf_counter() - started

    base = min(baseline() for _ in range(3))
    before = peak_rss_mb()
    started = time.perf_counter()
    answer = client.get(f"/v1/invoices/{invoice.pk}/statement.csv")
    rows = sum(chunk.count(b"\n") for chunk in answer.streaming_content)
    csv_s = time.perf_counter() - started
    grown = peak_rss_mb() - before
    started = time.perf_counter()
    pdf = client.get(f"/v1/invoices/{invoice.pk}/statement.pdf")
    pdf_s = time.perf_counter() - started
    pdf_grown = peak_rss_mb() - before
    assert pdf.content[:5] == b"%PDF-"
    pages = {}
    for name, offset in (("first", 0), ("last", options.outcomes - 1000)):
        started = time.perf_counter()
        body = client.get(f"/v1/invoices/{invoice.pk}/statement", {"offset": offset}).json()
        pages[name] = time.perf_counter() - started
        assert len(body["outcomes"]) == 1000, body.get("errors")

    figures = {
        "outcomes": options.outcomes,
        "baseline_select_s": base,
        "csv_s": csv_s,
        "csv_rows": rows,
        "csv_rows_per_s": rows / csv_s,
        "csv_ratio": csv_s / base,
        "csv_peak_rss_growth_mb": grown,
        "pdf_s": pdf_s,
        "pdf_bytes": len(pdf.content),
        "pdf_peak_rss_growth_mb": pdf_grown,
        "json_first_page_s": pages["first"],
        "json_last_page_s": pages["last"],
    }
    print()
    print(f"(a) one SELECT of the outcomes, fetched: {base:.2f} s")
    print(f"(b) the CSV, streamed: {csv_s:.2f} s, {rows:,} rows ({rows / csv_s:,.0f}/s), "
          f"{csv_s / base:.1f}× (a); peak memory grew {grown:.0f} MB")  # fmt: skip
    print(f"(d) the PDF: {pdf_s:.1f} s, {len(pdf.content) / 1e6:.1f} MB; peak memory grew "
          f"{pdf_grown:.0f} MB (it is assembled in memory)")  # fmt: skip
    print(f"(c) a JSON page of 1,000: first {pages['first'] * 1000:.0f} ms, "
          f"last {pages['last'] * 1000:.0f} ms")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "statement.json").write_text(json.dumps(figures, indent=2))
    print(f"written to {RESULTS / 'statement.json'}")


if __name__ == "__main__":
    main()
