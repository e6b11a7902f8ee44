"""Soak: sustained mixed traffic through the API as served (gunicorn behind nginx) for a
long while, at 80 % (--load) of the capacity measured for the same mix just before.

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/soak.py` or with
DATABASE_URL (and CELERY_BROKER_URL) set. In a scratch database (payback_bench) it:
  1. measures capacity: the mix, unthrottled, from --clients processes for --probe s;
  2. soaks: the same mix at 80 % (--load 0.8) of that request rate for --seconds
     (default 600), paced per client;
and reports: events acknowledged (the sum of `accepted`) against events stored (a count
in the database), responses by status (any 5xx is a failure), p50/p99 per kind of
request, and the resident memory of the gunicorn workers at the start and the end.

The mix, per request: 60 % single events, 10 % batches of 100 events, 20 % outcomes,
10 % usage reads. Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import (  # bench/ingest.py: the same set-up and server
    RESULTS,
    ROOT,
    SERVERS,
    count_events,
    create_key_and_customers,
    database_urls,
    free_port,
    fresh_database,
    start_server,
)

sys.path.insert(0, str(ROOT))
from config import front

CUSTOMERS = 200
KINDS = [("single", 60), ("batch", 10), ("outcome", 20), ("usage", 10)]


def _event(rng: random.Random, run: str, n: int) -> dict[str, Any]:
    return {
        "id": f"{run}-{n}",
        "customer": f"cust-{rng.randrange(CUSTOMERS)}",
        "timestamp": datetime.now(UTC).isoformat(),
        "provider": "openai",
        "model": rng.choice(["gpt-4o", "gpt-4o-mini"]),
        "input_tokens": rng.randint(200, 5000),
        "output_tokens": rng.randint(10, 800),
        "outcome": f"{run}-o-{n // 5}",
    }


def _client(args: tuple[int, str, int, float, float]) -> dict[str, Any]:
    """One client: requests of the mix until `until`, at most `rate` requests/s."""
    port, key, seed, rate, until = args
    rng = random.Random(seed)
    run = f"{uuid.uuid4().hex[:6]}-{seed}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    kinds = [kind for kind, weight in KINDS for _ in range(weight)]
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in KINDS}
    statuses: Counter[int] = Counter()
    acknowledged, n, next_at = 0, 0, time.monotonic()
    while time.monotonic() < until:
        if rate:
            next_at += 1 / rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        kind = rng.choice(kinds)
        if kind == "single":
            method, path, body = "POST", "/v1/events", _event(rng, run, n)
            n += 1
        elif kind == "batch":
            method, path = "POST", "/v1/events"
            body = {"events": [_event(rng, run, n + i) for i in range(100)]}
            n += 100
        elif kind == "outcome":
            method, path = "POST", "/v1/outcomes"
            body = {
                "id": f"{run}-o-{rng.randrange(max(n // 5, 1))}-{rng.randrange(10**9)}",
                "customer": f"cust-{rng.randrange(CUSTOMERS)}",
                "type": "resolution",
                "status": "succeeded",
            }
        else:
            method, path, body = "GET", f"/v1/customers/cust-{rng.randrange(CUSTOMERS)}/usage", None
        started = time.perf_counter()
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies[kind].append(time.perf_counter() - started)
        statuses[response.status] += 1
        if response.status == 200 and path == "/v1/events":
            acknowledged += json.loads(payload)["accepted"]
    conn.close()
    return {"latencies": latencies, "statuses": dict(statuses), "acknowledged": acknowledged}


def drive(port: int, key: str, clients: int, seconds: float, rate: float) -> dict[str, Any]:
    until = time.monotonic() + seconds
    work = [(port, key, seed, rate / clients if rate else 0.0, until) for seed in range(clients)]
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        started = time.monotonic()
        results = pool.map(_client, work)
        elapsed = time.monotonic() - started
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update({int(k): v for k, v in result["statuses"].items()})
    figures: dict[str, Any] = {
        "seconds": elapsed,
        "requests": sum(statuses.values()),
        "requests_per_s": sum(statuses.values()) / elapsed,
        "statuses": dict(statuses),
        "acknowledged_events": sum(result["acknowledged"] for result in results),
    }
    for kind, _ in KINDS:
        samples = sorted(lat for result in results for lat in result["latencies"][kind])
        if samples:
            figures[f"{kind}_p50_ms"] = 1000 * samples[len(samples) // 2]
            figures[f"{kind}_p99_ms"] = (
                1000 * samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            )
    return figures


def workers_rss_mb(server_pid: int) -> list[float]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--probe", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--load", type=float, default=0.8, help="the soak's rate as a share of the capacity"
    )
    options = parser.parse_args()

    admin, bench_url = database_urls()
    env = fresh_database(admin, bench_url)
    env["API_KEY_RATE_LIMIT"] = "0"  # the soak measures the service, not the limiter
    key = create_key_and_customers(env, CUSTOMERS)
    port = free_port()
    processes = start_server(SERVERS[0], env, port)  # as served: nginx in front
    server = processes[0]  # gunicorn's master
    try:
        capacity = drive(port, key, options.clients, options.probe, rate=0)
        target = options.load * capacity["requests_per_s"]
        stored_before = count_events(bench_url)
        acknowledged_before = capacity["acknowledged_events"]
        rss_start = workers_rss_mb(server.pid)
        soak = drive(port, key, options.clients, options.seconds, rate=target)
        rss_end = workers_rss_mb(server.pid)
        stored = count_events(bench_url)
    finally:
        front.stop(processes)
    results = {
        "capacity": capacity,
        "load": options.load,
        "target_requests_per_s": target,
        "soak": soak,
        "events_stored_during_soak": stored - stored_before,
        "events_acknowledged_in_all": acknowledged_before + soak["acknowledged_events"],
        "events_stored_in_all": stored,
        "server_5xx": sum(n for status, n in soak["statuses"].items() if status >= 500),
        "workers_rss_mb_start": rss_start,
        "workers_rss_mb_end": rss_end,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(results, indent=2))
    print(f"capacity (the mix, unthrottled): {capacity['requests_per_s']:.0f} requests/s")
    print(
        f"soak: {soak['seconds']:.0f} s at {soak['requests_per_s']:.0f} requests/s "
        f"({options.load:.0%} of capacity)"
    )
    print(f"statuses: {soak['statuses']}   5xx: {results['server_5xx']}")
    print(
        f"events acknowledged {results['events_acknowledged_in_all']:,} = stored "
        f"{results['events_stored_in_all']:,}: "
        f"{results['events_acknowledged_in_all'] == results['events_stored_in_all']}"
    )
    for kind, _ in KINDS:
        p50, p99 = soak.get(f"{kind}_p50_ms", 0), soak.get(f"{kind}_p99_ms", 0)
        print(f"  {kind:8} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    print(f"gunicorn workers RSS: start {rss_start} MB, end {rss_end} MB")


if __name__ == "__main__":
    main()
