"""Invoice-preview benchmark: GET /v1/customers/{id}/usage for a customer with 100k
events and 10k outcomes in the period.

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/preview.py`
(embedded PostgreSQL) or with DATABASE_URL set. It builds a scratch database of its own
(payback_bench_preview), then times, in the same process:
  - the whole request through Django (test client: no network), N times: p50, p90, max;
  - each part the request issues, alone: the usage totals, by model, by feature, the
    outcome summaries, and the invoice through the close's own rating pipeline (its
    calls' cost per feature and active seats, succeeded outcomes per type and value fees,
    seats, the previous invoice for late usage);
and prints both, with the ratio of the request's p50 to the sum of its queries' p50s
(the request should cost little more than its queries). Writes
bench/results/preview.json. Options: --events, --outcomes, --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scratch import scratch_database  # bench/scratch.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BENCH_DB = "payback_bench_preview"

PRICE_BOOK = {
    "plans": [
        {
            "code": "bench",
            "name": "Bench",
            "currency": "USD",
            "base_fee": "49",
            "minimum_spend": "100",
            "premium_seat_fee": "10",
            "seat_mode": "active",
            "outcomes": [
                {"type": "resolution", "unit_price": "0.99", "included": 100},
                {
                    "type": "email_drafted",
                    "tier_mode": "graduated",
                    "tiers": [{"up_to": 1000, "unit_price": "1"}, {"unit_price": "0.5"}],
                },
                {"type": "invoice_negotiated", "percentage": "5", "floor": "1", "cap": "50"},
            ],
            "token_pass_through": [{"feature": "", "markup": "0.2"}],
        }
    ]
}


def fill(events: int, outcomes: int) -> None:
    """One customer, `outcomes` outcomes and `events` calls spread over this month,
    written with set-based SQL (the bench measures reads, not ingest)."""
    from django.db import connection
    from django.utils import timezone

    from billing.plans.models import Subscription
    from billing.plans.services import customer_save, plans_load

    plans_load(document=PRICE_BOOK)
    customer, _ = customer_save(external_id="big", plan_code="bench")
    # Subscribed since the month began: its billing period is this month, which the usage
    # endpoint reads by default.
    Subscription.objects.filter(customer=customer).update(
        started_at=timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO outcomes_outcome (external_id, customer_id, type, status, occurred_at,
                succeeded_at, succeeded_recorded_at, failed_at, value, value_currency, properties,
                created_at, updated_at)
            SELECT 'o-' || i, %(customer)s,
                   (ARRAY['resolution', 'email_drafted', 'invoice_negotiated'])[1 + i %% 3],
                   CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                   date_trunc('month', now()) + (i %% 600) * interval '1 hour',
                   CASE WHEN i %% 10 = 0 THEN NULL
                        ELSE date_trunc('month', now()) + (i %% 600) * interval '1 hour' END,
                   CASE WHEN i %% 10 = 0 THEN NULL ELSE now() END,
                   CASE WHEN i %% 10 = 0 THEN date_trunc('month', now()) END,
                   CASE WHEN i %% 3 = 2 THEN (i %% 2000)::numeric END,
                   CASE WHEN i %% 3 = 2 THEN 'USD' ELSE '' END,
                   '{}', now(), now()
            FROM generate_series(1, %(outcomes)s) AS i
            """,
            {"customer": customer.pk, "outcomes": outcomes},
        )
        cursor.execute(
            """
            INSERT INTO metering_usageevent (event_id, customer_id, "timestamp", received_at,
                provider, model, input_tokens, output_tokens, cache_read_tokens,
                cache_write_tokens, cost, cost_source, price_version, outcome_ref, end_user,
                feature, tier, prompt_hash, cache_hit, properties)
            SELECT 'e-' || i, %(customer)s,
                   date_trunc('month', now()) + (i %% 600) * interval '1 hour', now(),
                   'openai', (ARRAY['gpt-4o', 'gpt-4o-mini'])[1 + i %% 2], 1000 + i %% 5000,
                   200, 0, 0, CASE WHEN i %% 50 = 0 THEN NULL ELSE 0.001234 END,
                   CASE WHEN i %% 50 = 0 THEN 'unpriced' ELSE 'catalog' END, '',
                   'o-' || (1 + i %% %(outcomes)s), 'user-' || i %% 500,
                   (ARRAY['reply', 'summary', ''])[1 + i %% 3],
                   CASE WHEN i %% 4 = 0 THEN 'premium' ELSE '' END, '', NULL, '{}'
            FROM generate_series(1, %(events)s) AS i
            """,
            {"customer": customer.pk, "events": events, "outcomes": outcomes},
        )
        cursor.execute("ANALYZE")


def timed(function: Callable[[], Any], runs: int) -> list[float]:
    function()  # warm: plans, caches, connections
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(times),
        "p90_ms": times[int(len(times) * 0.9)],
        "max_ms": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--outcomes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = scratch_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone
    from rest_framework_api_key.models import APIKey

    from billing.invoicing import selectors as invoicing_selectors
    from billing.plans import selectors as plans_selectors
    from metering import selectors as metering_selectors
    from metering.models import Customer
    from outcomes import selectors as outcome_selectors

    call_command("migrate", verbosity=0)
    fill(options.events, options.outcomes)
    _, key = APIKey.objects.create_key(name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    customer = Customer.objects.get(external_id="big")
    period = plans_selectors.customer_period(customer=customer, moment=timezone.now())
    assert period is not None
    start, end = period  # the window GET /usage reads by default
    subscription, terms = plans_selectors.customer_plan_terms(customer=customer)
    assert subscription is not None and terms is not None

    def request() -> None:
        response = client.get("/v1/customers/big/usage")
        assert response.status_code == 200, response.content

    events = metering_selectors.customer_events(customer=customer, start=start, end=end)
    queries: dict[str, Callable[[], Any]] = {
        "usage totals (and active seats)": lambda: metering_selectors.customer_usage(
            customer=customer, start=start, end=end
        ),
        "outcome summaries": lambda: outcome_selectors.outcome_type_summaries(
            customer=customer, start=start, end=end
        ),
        "the invoice (rating pipeline)": lambda: invoicing_selectors.periods_rate(
            subscriptions=[subscription], start=start, end=end, snapshot=None
        ),
        "plan terms": lambda: plans_selectors.customer_plan_terms(customer=customer),
        "events in window (count)": lambda: events.count(),
    }

    body = client.get("/v1/customers/big/usage").json()
    whole = summary(timed(request, options.runs))
    parts = {name: summary(timed(query, options.runs)) for name, query in queries.items()}
    issued = (
        "usage totals (and active seats)",
        "outcome summaries",
        "the invoice (rating pipeline)",
        "plan terms",
    )
    parts_p50 = sum(parts[name]["p50_ms"] for name in issued)

    results = {
        "events": options.events,
        "outcomes": options.outcomes,
        "request": whole,
        "queries": parts,
        "sum_of_issued_queries_p50_ms": parts_p50,
        "request_to_queries_ratio": whole["p50_ms"] / parts_p50,
        "preview_total": body["invoice_preview"]["total"],
        "preview_lines": len(body["invoice_preview"]["lines"]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "preview.json").write_text(json.dumps(results, indent=2))

    print(
        f"\ninvoice preview of one customer: {options.events:,} events, {options.outcomes:,} "
        f"outcomes, {options.runs} runs"
    )
    print(f"{'measure':34} {'p50 ms':>9} {'p90 ms':>9} {'max ms':>9}")
    print(
        f"{'GET /usage (whole request)':34} {whole['p50_ms']:9.1f} {whole['p90_ms']:9.1f} "
        f"{whole['max_ms']:9.1f}   target p50 ≤ 200 ms"
    )
    for name, figures in parts.items():
        print(
            f"{'  ' + name:34} {figures['p50_ms']:9.1f} {figures['p90_ms']:9.1f} "
            f"{figures['max_ms']:9.1f}"
        )
    print(
        f"\nsum of the queries the request issues (p50): {parts_p50:.1f} ms; request / queries = "
        f"{whole['p50_ms'] / parts_p50:.2f}"
    )
    print(f"preview: {results['preview_lines']} lines, total {results['preview_total']} cents")
    print(f"written to {RESULTS / 'preview.json'}")


if __name__ == "__main__":
    main()
