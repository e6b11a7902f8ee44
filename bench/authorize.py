"""Authorization benchmark: authorize + settle pairs against single-event ingest.

Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/payback .venv/bin/python
bench/authorize.py` (or through `config.embedded exec`). In a scratch database of its own
(payback_bench_authorize): --customers customers on a per-resolution plan with credits
and a hard spend limit, each with --events calls and --outcomes successes in the running
period, then, against one API as it is served (gunicorn behind nginx, config/front.py),
from 4 concurrent keep-alive connections, one after the other:
  (a) single-event POST /v1/events (the baseline);
  (b) POST /v1/customers/{id}/authorize then POST /v1/reservations/{id}/settle, a pair
      per step: pairs/s, p50 and p99 of a pair, and the ratio to (a); and the same
      counted request by request (each pair is two requests).
Issue 15's target: (b) ≥ 1.0× (a) at no worse p99. Prints a table and writes
bench/results/authorize.json. Options: --customers, --events, --outcomes, --requests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ingest import free_port, start_server  # bench/ingest.py (the script folder is on sys.path)
from scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
BENCH_DB = "payback_bench_authorize"

SETUP = """
import django, sys
from datetime import timedelta
from decimal import Decimal
django.setup()
from django.db import connection
from django.utils import timezone
from rest_framework_api_key.models import APIKey
from billing.credits.services import GrantRequest, grant_create
from billing.limits.services import spend_limit_set
from billing.plans.models import Subscription
from billing.plans.selectors import plan_version_current
from billing.plans.services import plans_load
from metering.models import Customer
customers, events, outcomes = (int(a) for a in sys.argv[1:4])
plans_load(document={"plans": [{"code": "bench", "name": "Bench", "currency": "USD",
    "base_fee": "10", "outcomes": [{"type": "resolution", "unit_price": "0.99"}]}]})
plan = plan_version_current(plan_id=1).plan
started = timezone.now() - timedelta(hours=2)
for number in range(customers):
    customer = Customer.objects.create(external_id=f"cust-{number}")
    Subscription.objects.create(customer=customer, plan=plan, started_at=started)
    grant_create(customer=customer, request=GrantRequest(amount=Decimal(10**9),
        currency="USD", effective_at=started))
    spend_limit_set(customer=customer, mode="hard")
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO metering_usageevent (event_id, customer_id, timestamp, received_at, "
        "provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "cost, cost_source, price_version, outcome_ref, end_user, feature, tier, prompt_hash, "
        "properties) SELECT 'e-' || c.id || '-' || g, c.id, now() - interval '1 hour', now(), "
        "'openai', 'gpt-4o', 1000, 100, 0, 0, 0.001, 'explicit', '', '', '', 'reply', '', '', "
        "'{}' FROM metering_customer c, generate_series(1, %s) g", [events])
    cursor.execute(
        "INSERT INTO outcomes_outcome (external_id, customer_id, type, status, occurred_at, "
        "succeeded_at, succeeded_recorded_at, value_currency, properties, created_at, updated_at) "
        "SELECT 'o-' || c.id || '-' || g, c.id, 'resolution', 'succeeded', "
        "now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour', "
        "'', '{}', now(), now() "
        "FROM metering_customer c, generate_series(1, %s) g", [outcomes])
print(APIKey.objects.create_key(name="bench")[1])
"""

# In process, against the same data: what one single-event ingest costs, and what the
# pair's own transactions cost with the rating taken out (authorize's lock, sum of open
# reservations, limit and insert; then the settle): the floor any rating adds to.
FLOOR = """
import django, json, time, uuid
from decimal import Decimal
django.setup()
from django.db import connection, transaction
from django.utils import timezone
from billing.limits import selectors
from billing.limits.models import Reservation
from billing.limits.services import SPEND_LOCK, authorize, reservation_settle, SpendRequest
from metering.models import Customer
from metering.schemas import parse_event_batch
from metering.services import events_ingest
customers = list(Customer.objects.order_by("pk")[:100])
def ingest(i):
    body = json.dumps({"id": f"floor-{uuid.uuid4().hex}", "customer": f"cust-{i % 100}",
        "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100})
    events_ingest(events=parse_event_batch(body.encode(), now=timezone.now()))
def unrated(i):
    customer = customers[i % len(customers)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SPEND_LOCK, customer.pk])
        selectors.reserved(customer_id=customer.pk)
        selectors.spend_limit(customer_id=customer.pk)
        return Reservation.objects.create(public_id=f"res_{uuid.uuid4().hex}",
            customer=customer, external_id=f"auth_{uuid.uuid4().hex}", currency="USD",
            amount=Decimal("0.05"), expires_at=timezone.now())
def rated(i):
    return authorize(customer=customers[i % len(customers)],
        request=SpendRequest(amount=Decimal("0.05")), now=timezone.now()).reservation
def settle(reservation):
    reservation_settle(public_id=reservation.public_id, amount=Decimal("0.04"),
        now=timezone.now())
def ms(step, items):
    started = time.perf_counter()
    done = [step(item) for item in items]
    return 1000 * (time.perf_counter() - started) / len(items), done
figures = {}
for name, step in (("ingest", ingest), ("authorize_unrated", unrated), ("authorize", rated)):
    ms(step, range(50))
    figures[name + "_ms"], made = ms(step, range(400))
    if name != "ingest":
        figures[name.replace("authorize", "settle") + "_ms"] = ms(settle, made)[0]
print(json.dumps(figures))
"""


def _worker(args: tuple[str, int, str, int, int]) -> tuple[list[float], list[float]]:
    kind, port, key, customers, count = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]
    waits: list[float] = []  # a step: one ingest, or an authorize and its settle
    requests: list[float] = []  # each request on its own

    def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        conn.request(method, path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        payload = response.read()
        requests.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {payload[:200]!r}")
        return json.loads(payload)

    for number in range(count):
        customer = f"cust-{number % customers}"
        started = time.perf_counter()
        if kind == "ingest":
            call(
                "POST",
                "/v1/events",
                {
                    "id": f"{run}-{number}",
                    "customer": customer,
                    "provider": "openai",
                    "model": "gpt-4o",
                    "input_tokens": 1000,
                    "output_tokens": 100,
                },
            )
        else:
            answer = call("POST", f"/v1/customers/{customer}/authorize", {"amount": "0.05"})
            reservation = answer["reservation"]["id"]
            call("POST", f"/v1/reservations/{reservation}/settle", {"amount": "0.04"})
        waits.append(time.perf_counter() - started)
    conn.close()
    return waits, requests


def measure(kind: str, port: int, key: str, customers: int, requests: int) -> dict[str, Any]:
    work = [(kind, port, key, customers, requests // 4)] * 4
    with multiprocessing.get_context("fork").Pool(4) as pool:
        started = time.perf_counter()
        answers = pool.map(_worker, work)
        elapsed = time.perf_counter() - started
    waits = sorted(w for ws, _ in answers for w in ws)
    each = sorted(r for _, rs in answers for r in rs)
    return {
        "per_s": len(waits) / elapsed,
        "p50_ms": 1000 * waits[len(waits) // 2],
        "p99_ms": 1000 * waits[int(len(waits) * 0.99)],
        "mean_ms": 1000 * statistics.fmean(waits),
        "requests_per_s": len(each) / elapsed,
        "request_p50_ms": 1000 * each[len(each) // 2],
        "request_p99_ms": 1000 * each[int(len(each) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000, help="calls per customer")
    parser.add_argument("--outcomes", type=int, default=100, help="successes per customer")
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()
    database_url = scratch_database(BENCH_DB)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.django.base",
        "API_KEY_RATE_LIMIT": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    print(f"loading {options.customers:,} customers …", flush=True)
    key = subprocess.run(
        [sys.executable, "-c", SETUP, str(options.customers), str(options.events),
         str(options.outcomes)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    from config import front  # after ROOT is on sys.path

    port = free_port()
    processes = start_server("nginx+gunicorn", env, port)
    try:
        measure("ingest", port, key, options.customers, 200)  # warm up both paths
        measure("authorize", port, key, options.customers, 200)
        ingest = measure("ingest", port, key, options.customers, options.requests)
        authorize = measure("authorize", port, key, options.customers, options.requests)
    finally:
        front.stop(processes)
    floor = json.loads(
        subprocess.run(
            [sys.executable, "-c", FLOOR], cwd=ROOT, env=env, check=True,
            capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
    )  # fmt: skip
    ratio = authorize["per_s"] / ingest["per_s"]
    request_ratio = authorize["requests_per_s"] / ingest["requests_per_s"]
    print()
    print(f"{'measure':44} {'per s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'(a) single-event ingest, 4 connections':44} {ingest['per_s']:10,.0f} "
          f"{ingest['p50_ms']:8.1f} {ingest['p99_ms']:8.1f}")  # fmt: skip
    print(f"{'(b) authorize + settle pairs, 4 connections':44} {authorize['per_s']:10,.0f} "
          f"{authorize['p50_ms']:8.1f} {authorize['p99_ms']:8.1f}   "
          f"{ratio:.2f}× (a) (target ≥ 1.0×, p99 ≤ (a)'s)")  # fmt: skip
    print(f"{'(b) the same, request by request':44} {authorize['requests_per_s']:10,.0f} "
          f"{authorize['request_p50_ms']:8.1f} {authorize['request_p99_ms']:8.1f}   "
          f"{request_ratio:.2f}× (a)")  # fmt: skip
    pair_unrated = floor["authorize_unrated_ms"] + floor["settle_unrated_ms"]
    print(f"in process: a single-event ingest {floor['ingest_ms']:.2f} ms; a pair "
          f"{floor['authorize_ms'] + floor['settle_ms']:.2f} ms, of which its own "
          f"transactions without the rating {pair_unrated:.2f} ms "
          f"({pair_unrated / floor['ingest_ms']:.1f}× an ingest)")  # fmt: skip
    print(f"({options.customers:,} customers, {options.events:,} calls and "
          f"{options.outcomes:,} successes each in the running period)")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "authorize.json").write_text(
        json.dumps(
            {
                "options": vars(options),
                "ingest": ingest,
                "authorize": authorize,
                "ratio": ratio,
                "request_ratio": request_ratio,
                "in_process": floor,
            },
            indent=2,
        )
    )
    print(f"written to {RESULTS / 'authorize.json'}")


if __name__ == "__main__":
    main()
