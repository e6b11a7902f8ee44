"""Stripe push rate: invoices pushed through the request limiter set to Stripe's live
limit (100 requests/s), against the ideal, on a local stand-in for Stripe.

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/stripe_push.py`.
It starts the test suite's Stripe stand-in (tests/support/fake_stripe.py: localstripe behind a
small shim) on a free port, closes N customer months into invoices (two lines each) in a
scratch database (payback_bench_push), and pushes them twice over (new invoices each
time): once with no limit (what the stand-in allows: the ideal here) and once at 100
requests a second. Prints requests per second and invoices per second for both, and
the ratio to the ideal rate of 100 requests a second. Writes bench/results/push.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from scratch import scratch_database  # bench/scratch.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BENCH_DB = "payback_bench_push"
STRIPE_LIMIT = 100


def start_stand_in() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "fake_stripe.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{url}/_config/requests", timeout=1)
            return server, url
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    sys.exit("the Stripe stand-in did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=100)
    options = parser.parse_args()

    os.environ["DATABASE_URL"] = scratch_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    server, url = start_stand_in()
    os.environ.update(STRIPE_API_KEY="", STRIPE_API_BASE=url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from billing.invoicing.models import Invoice
    from billing.invoicing.services import periods_due_close
    from billing.plans.models import Subscription
    from billing.plans.services import plans_load
    from billing.stripe_sync import stripe_api
    from billing.stripe_sync.services.push import invoice_push
    from metering.models import Customer

    try:
        call_command("migrate", verbosity=0)
        plans_load(
            document={
                "plans": [
                    {
                        "code": "b",
                        "name": "B",
                        "currency": "USD",
                        "base_fee": "10",
                        "premium_seat_fee": "5",
                    }
                ]
            }
        )
        results = {}
        for run, limit in (("ideal (no limit)", 0), ("limited to 100 requests/s", STRIPE_LIMIT)):
            start = datetime(2026, 10, 1, tzinfo=UTC)
            for i in range(options.invoices):
                customer = Customer.objects.create(external_id=f"{run[:5]}-{i}")
                Subscription.objects.create(
                    customer=customer, plan_id=1, premium_seats=2, started_at=start
                )
            settings.STRIPE_API_KEY = ""
            periods_due_close(as_of=start + timedelta(days=40))
            invoices = list(
                Invoice.objects.filter(push_state="pending").values_list("pk", flat=True)
            )
            settings.STRIPE_API_KEY = "sk_test_bench"
            settings.STRIPE_REQUESTS_PER_SECOND = limit
            stripe_api._client.cache_clear()
            stripe_api._limiter.cache_clear()
            before = sum(requests.get(f"{url}/_config/requests", timeout=5).json().values())
            began = time.perf_counter()
            for pk in invoices:
                invoice_push(invoice_id=pk)
            elapsed = time.perf_counter() - began
            writes = (
                sum(requests.get(f"{url}/_config/requests", timeout=5).json().values()) - before
            )
            results[run] = {
                "invoices": len(invoices),
                "requests": writes,
                "seconds": elapsed,
                "requests_per_s": writes / elapsed,
                "invoices_per_s": len(invoices) / elapsed,
            }
    finally:
        server.terminate()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "push.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'run':28} {'invoices':>9} {'requests':>9} {'req/s':>8} {'inv/s':>7}  vs 100 req/s")
    for run, figures in results.items():
        print(
            f"{run:28} {figures['invoices']:9} {figures['requests']:9} "
            f"{figures['requests_per_s']:8.1f} {figures['invoices_per_s']:7.1f}  "
            f"{figures['requests_per_s'] / STRIPE_LIMIT:.2f}×"
        )
    print(f"written to {RESULTS / 'push.json'}")


if __name__ == "__main__":
    main()
