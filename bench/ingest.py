"""Ingest benchmark: the HTTP API against raw COPY into the same table shape.

Run with `make bench` (embedded PostgreSQL) or, against a server,
`DATABASE_URL=postgres://postgres@127.0.0.1:5432/payback .venv/bin/python bench/ingest.py`.

In one run, on one machine and one PostgreSQL server, in a scratch database of its own:
  (a) baseline: psycopg binary COPY of events-shaped rows into a scratch table with the
      events table's columns and indexes, transactions of 1,000 rows, from as many
      parallel connections as the API has gunicorn workers;
  (b) POST /v1/events through the API as it is served (gunicorn behind nginx,
      config/front.py) and, for the ratio, through gunicorn alone as it was served
      before nginx, one after the other in the same run: batches of 1,000 and of 100
      from concurrent clients, events/s and the ratio to (a);
  (c) the batches of 1,000 replayed: rate, and zero new rows;
  (d) single-event POSTs from 4 concurrent keep-alive connections: requests/s, p50, p99;
      once from 4 Python client processes, and once from wrk (a C load generator,
      bench/wrk_single_event.lua) when it is installed (`apt-get install wrk`): the
      Python clients take a good part of the two cores the server runs on, wrk little;
  (e) peak RSS of a gunicorn worker (VmHWM);
  (f) the ceiling under (d): the same single-event parse and ingest called in 4 processes
      without HTTP (no server, no client), each event its own call as a request is.
Prints a table and writes bench/results/ingest.json. Options: --events N (batch runs),
--singles N, --clients N, --alone-first, --prompt-hashes (every call carries a prompt hash and
a cache hit: what the savings levers' two partial indexes cost ingest at most).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1-mini")]
BENCH_DB = "payback_bench"


# --- set-up ---------------------------------------------------------------------------------


def database_urls() -> tuple[str, str]:
    """(admin URL, bench database URL) derived from DATABASE_URL."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        sys.exit("DATABASE_URL is not set: run `make bench`, or set it to a PostgreSQL server.")
    info = psycopg.conninfo.conninfo_to_dict(_libpq_url(base))
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    bench = psycopg.conninfo.make_conninfo(**{**info, "dbname": BENCH_DB})
    return admin, bench


def _libpq_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1] if url.startswith("postgres://") else url


def django_url(conninfo: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = info.get("host", "127.0.0.1")
    if host.startswith("/"):
        return f"postgresql://{info.get('user', 'postgres')}:@/{BENCH_DB}?host={host}"
    port = info.get("port", "5432")
    return f"postgresql://{info.get('user', 'postgres')}@{host}:{port}/{BENCH_DB}"


def fresh_database(admin: str, bench_url: str) -> dict[str, str]:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    env = {
        **os.environ,
        "DATABASE_URL": django_url(bench_url),
        "DJANGO_SETTINGS_MODULE": "config.django.base",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return env


def create_key_and_customers(env: dict[str, str], customers: int) -> str:
    script = (
        "import django; django.setup()\n"
        "from rest_framework_api_key.models import APIKey\n"
        "from metering.models import Customer\n"
        "Customer.objects.bulk_create(\n"
        f"    [Customer(external_id=f'cust-{{i}}') for i in range({customers})])\n"
        "print(APIKey.objects.create_key(name='bench')[1])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def make_events(
    count: int, customers: int, seed: int, *, hashed: bool = False
) -> list[dict[str, Any]]:
    """Calls of the last day; a third read from the prompt cache. `hashed`: every call also
    carries a prompt hash and a cache hit (what the two partial indexes on calls cost
    ingest at most: each call is in both)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    events = []
    for i in range(count):
        provider, model = rng.choice(MODELS)
        input_tokens = rng.randint(200, 20_000)
        event: dict[str, Any] = {
            "id": f"{run}-{seed}-{i}",
            "customer": f"cust-{rng.randrange(customers)}",
            "timestamp": (now - timedelta(seconds=rng.randint(0, 86_400))).isoformat(),
            "provider": provider,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": rng.randint(10, 2_000),
            "cache_read_tokens": rng.choice([0, 0, input_tokens // 2]),
            "feature": rng.choice(["reply", "summary", "triage"]),
            "outcome": f"ticket-{rng.randrange(count // 3 + 1)}",
            "user": f"user-{rng.randrange(1000)}",
        }
        if i % 10 == 0:
            event["cost"] = "0.0042"
        if hashed:
            event["prompt_hash"] = f"prompt-{rng.randrange(count // 2 + 1)}"
            event["cache_hit"] = True
        events.append(event)
    return events


def batches(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [
        json.dumps({"events": events[i : i + size]}).encode() for i in range(0, len(events), size)
    ]


# --- (a) the COPY baseline -----------------------------------------------------------------

BASELINE_TABLE = "bench_copy_baseline"
BASELINE_COLUMNS = (
    "event_id", "customer_id", "timestamp", "received_at", "provider", "model", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost", "cost_source",
    "price_version", "outcome_ref", "end_user", "feature", "tier", "prompt_hash", "cache_hit",
    "properties",
)  # fmt: skip
BASELINE_TYPES = (
    "text", "int8", "timestamptz", "timestamptz", "text", "text", "int8", "int8", "int8", "int8",
    "numeric", "text", "text", "text", "text", "text", "text", "text", "bool", "jsonb",
)  # fmt: skip


def baseline_rows(
    events: list[dict[str, Any]], customer_ids: dict[str, int]
) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [
        (
            e["id"],
            customer_ids[e["customer"]],
            datetime.fromisoformat(e["timestamp"]),
            now,
            e["provider"],
            e["model"],
            e["input_tokens"],
            e["output_tokens"],
            e["cache_read_tokens"],
            0,
            Decimal("0.001234"),
            "catalog",
            "genai-prices",
            e["outcome"],
            e["user"],
            e["feature"],
            "",
            e.get("prompt_hash", ""),
            e.get("cache_hit"),
            psycopg.types.json.Jsonb({}),
        )
        for e in events
    ]


def _copy_worker(args: tuple[str, list[list[tuple[Any, ...]]]]) -> int:
    conninfo, chunks = args
    written = 0
    with psycopg.connect(conninfo) as conn:
        for chunk in chunks:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(BASELINE_TABLE),
                        sql.SQL(", ").join(sql.Identifier(c) for c in BASELINE_COLUMNS),
                    )
                ) as copy:
                    copy.set_types(BASELINE_TYPES)
                    for row in chunk:
                        copy.write_row(row)
            written += len(chunk)
    return written


def run_baseline(
    conninfo: str, events: list[dict[str, Any]], connections: int, repeats: int
) -> dict[str, Any]:
    """COPY the rows `repeats` times, each into a fresh scratch table; report the median."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        customer_ids = dict(
            conn.execute("SELECT external_id, id FROM metering_customer").fetchall()
        )
    rows = baseline_rows(events, customer_ids)
    chunks = [rows[i : i + 1000] for i in range(0, len(rows), 1000)]
    work = [(conninfo, chunks[i::connections]) for i in range(connections)]
    rates = []
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        for _ in range(repeats):
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
                conn.execute(
                    f"CREATE TABLE {BASELINE_TABLE} (LIKE metering_usageevent INCLUDING ALL)"
                )
                conn.execute("CHECKPOINT")
            started = time.perf_counter()
            written = sum(pool.map(_copy_worker, work))
            rates.append(written / (time.perf_counter() - started))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {BASELINE_TABLE}")
    return {"rows": len(rows), "runs_rows_per_s": rates, "rows_per_s": statistics.median(rates)}


# --- (b)-(d) the HTTP API ------------------------------------------------------------------


def _post_worker(args: tuple[int, str, list[bytes]]) -> tuple[int, list[float], list[int]]:
    port, key, bodies = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: list[int] = []
    accepted = 0
    for body in bodies:
        started = time.perf_counter()
        conn.request("POST", "/v1/events", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - started)
        statuses.append(response.status)
        if response.status == 200:
            accepted += json.loads(payload)["accepted"]
    conn.close()
    return accepted, latencies, statuses


def post_all(
    port: int, key: str, bodies: list[bytes], clients: int, events_per_body: int
) -> dict[str, Any]:
    work = [(port, key, bodies[i::clients]) for i in range(clients)]
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        started = time.perf_counter()
        results = pool.map(_post_worker, work)
        elapsed = time.perf_counter() - started
    latencies = sorted(lat for _, lats, _ in results for lat in lats)
    statuses = [s for _, _, sts in results for s in sts]
    return {
        "requests": len(bodies),
        "events": len(bodies) * events_per_body,
        "accepted": sum(accepted for accepted, _, _ in results),
        "non_200": sum(1 for s in statuses if s != 200),
        "seconds": elapsed,
        "events_per_s": len(bodies) * events_per_body / elapsed,
        "requests_per_s": len(bodies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


# --- (f) the ingest without HTTP -----------------------------------------------------------


def _django_process(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.django.base"
    import django

    django.setup()


def _ingest_worker(bodies: list[bytes]) -> list[float]:
    from django.utils import timezone

    from metering.schemas import parse_event_batch
    from metering.services import events_ingest

    latencies = []
    for body in bodies:
        started = time.perf_counter()
        events_ingest(events=parse_event_batch(body, now=timezone.now()))
        latencies.append(time.perf_counter() - started)
    return latencies


def ingest_in_process(database_url: str, bodies: list[bytes], processes: int) -> dict[str, Any]:
    """(f): what the single-event path costs with HTTP, Django's handler and the load
    generator taken away: the ceiling (d) can approach on this machine and database."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_django_process, initargs=(database_url,)) as pool:
        pool.map(_ingest_worker, [bodies[:20]] * processes)  # connect, prepare
        work = [bodies[20 + i :: processes] for i in range(processes)]
        started = time.perf_counter()
        results = pool.map(_ingest_worker, work)
        elapsed = time.perf_counter() - started
    latencies = sorted(lat for lats in results for lat in lats)
    return {
        "events": len(latencies),
        "events_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The API as served (`make run`, docker-compose.yml): gunicorn behind nginx; and gunicorn
# alone on a TCP port, as it was served before nginx (issue 13), measured in the same run
# for the ratio.
SERVERS = ("nginx+gunicorn", "gunicorn alone")


def start_server(kind: str, env: dict[str, str], port: int) -> list[subprocess.Popen[bytes]]:
    """The API on `port`; its processes, gunicorn's first."""
    from config import front

    if kind == "nginx+gunicorn":
        folder = Path(tempfile.mkdtemp(prefix="payback-bench-"))  # a short socket path
        processes = front.start(folder, listen=f"127.0.0.1:{port}", env=env)
    else:
        processes = [
            subprocess.Popen(
                front.gunicorn_command(f"127.0.0.1:{port}"),
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        ]
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/health")
            if conn.getresponse().status == 200:
                return processes
        except OSError:
            pass
        time.sleep(0.1)
    front.stop(processes)
    sys.exit(f"{kind} did not start")


def worker_peak_rss_mb(gunicorn: subprocess.Popen[bytes]) -> float:
    """Largest VmHWM (peak resident set) among the gunicorn master's worker processes."""
    children = Path(f"/proc/{gunicorn.pid}/task/{gunicorn.pid}/children").read_text().split()
    peaks = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def wrk_singles(port: int, key: str, customers: int, seconds: int, conninfo: str) -> dict[str, Any]:
    """(d) again, from wrk: 4 connections over 2 threads for `seconds`, each request a new
    event. The events stored are counted against the requests answered (a few more may
    be stored: requests in flight when wrk stops are answered to nobody)."""
    before = count_events(conninfo)
    out = subprocess.run(
        ["wrk", "-t2", "-c4", f"-d{seconds}s", "--latency", "-s",
         str(ROOT / "bench" / "wrk_single_event.lua"), f"http://127.0.0.1:{port}/",
         "--", key, str(customers), uuid.uuid4().hex[:8]],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    stored = count_events(conninfo) - before

    def figure(pattern: str) -> str:
        found = re.search(pattern, out)
        if found is None:
            raise RuntimeError(f"wrk said:\n{out}")
        return found.group(1)

    def ms(text: str) -> float:  # wrk writes 850.00us, 3.74ms, 1.02s
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if text.endswith(unit):
                return float(text.removesuffix(unit)) * factor
        raise RuntimeError(f"wrk latency {text!r}")

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(figure(r"(\d+) requests in")),
        "requests_per_s": float(figure(r"Requests/sec:\s+([\d.]+)")),
        "p50_ms": ms(figure(r"50%\s+([\d.]+\w+)")),
        "p99_ms": ms(figure(r"99%\s+([\d.]+\w+)")),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "stored": stored,
    }


def count_events(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*) FROM metering_usageevent").fetchone()[0]


def measure_api(
    kind: str,
    env: dict[str, str],
    key: str,
    conninfo: str,
    options: argparse.Namespace,
    bodies_1000: list[bytes],
    bodies_100: list[bytes],
    singles: list[bytes],
) -> dict[str, Any]:
    """(b) to (e) through one server. Each server gets its own copy of the events (ids
    made unique per server), so that both insert rather than the second replaying."""
    from config import front

    def own(bodies: list[bytes]) -> list[bytes]:
        return [body.replace(b'"id": "', f'"id": "{kind[:1]}'.encode()) for body in bodies]

    port = free_port()
    processes = start_server(kind, env, port)
    try:
        post_all(
            port,
            key,
            batches(make_events(2000, options.customers, seed=9), 100),
            options.clients,
            100,
        )
        print(f"{kind}: batches of 1,000 ...", flush=True)
        api_1000 = post_all(port, key, own(bodies_1000), options.clients, 1000)
        rows_before_replay = count_events(conninfo)
        print(f"{kind}: replaying the batches of 1,000 ...", flush=True)
        replay = post_all(port, key, own(bodies_1000), options.clients, 1000)
        replay["new_rows"] = count_events(conninfo) - rows_before_replay
        print(f"{kind}: batches of 100 ...", flush=True)
        api_100 = post_all(port, key, own(bodies_100), options.clients, 100)
        print(f"{kind}: single events, 4 connections ...", flush=True)
        single = post_all(port, key, own(singles), 4, 1)
        single_wrk = None
        if shutil.which("wrk"):
            print(f"{kind}: single events, 4 connections, from wrk ...", flush=True)
            single_wrk = wrk_singles(port, key, options.customers, 20, conninfo)
        rss = worker_peak_rss_mb(processes[0])
    finally:
        front.stop(processes)
    return {
        "api_batch_1000": api_1000,
        "replay_batch_1000": {
            **replay,
            "ratio_to_first_insert": replay["events_per_s"] / api_1000["events_per_s"],
        },
        "api_batch_100": api_100,
        "single_event": single,
        "single_event_wrk": single_wrk,
        "worker_peak_rss_mb": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per batch run")
    parser.add_argument("--singles", type=int, default=8_000, help="single-event POSTs")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for batches")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument(
        "--alone-first",
        action="store_true",
        help="measure gunicorn alone first (the second server works on a larger table)",
    )
    parser.add_argument(
        "--prompt-hashes",
        action="store_true",
        help="every call carries a prompt hash and a cache hit (the partial indexes' worst case)",
    )
    options = parser.parse_args()
    hashed = options.prompt_hashes

    from config.gunicorn import workers

    admin, bench_conninfo = database_urls()
    env = fresh_database(admin, bench_conninfo)
    env["GUNICORN_WORKERS"] = str(workers)
    key = create_key_and_customers(env, options.customers)
    events_1000 = make_events(options.events, options.customers, seed=1, hashed=hashed)
    events_100 = make_events(options.events // 2, options.customers, seed=2, hashed=hashed)
    singles = [
        json.dumps(e).encode()
        for e in make_events(options.singles, options.customers, seed=3, hashed=hashed)
    ]
    bodies_1000 = batches(events_1000, 1000)
    bodies_100 = batches(events_100, 100)

    print(f"baseline: binary COPY, {workers} connections, 3 runs ...", flush=True)
    baseline = run_baseline(bench_conninfo, events_1000, workers, repeats=3)

    api = {
        kind: measure_api(kind, env, key, bench_conninfo, options, bodies_1000, bodies_100, singles)
        for kind in (reversed(SERVERS) if options.alone_first else SERVERS)
    }
    print("single events in process, no HTTP, 4 processes ...", flush=True)
    in_process = ingest_in_process(
        env["DATABASE_URL"],
        [
            json.dumps(e).encode()
            for e in make_events(options.singles, options.customers, seed=4, hashed=hashed)
        ],
        4,
    )

    base = baseline["rows_per_s"]
    for figures in api.values():
        for name in ("api_batch_1000", "api_batch_100"):
            figures[name]["ratio_to_baseline"] = figures[name]["events_per_s"] / base
    results = {
        "machine": {
            "cores": os.cpu_count(),
            "gunicorn_workers": workers,
            "clients": options.clients,
        },
        "baseline_copy": baseline,
        "servers": api,
        "single_event_in_process": in_process,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2))
    print_table(base, baseline, api, in_process)
    print(f"written to {RESULTS / 'ingest.json'}")


def print_table(
    base: float,
    baseline: dict[str, Any],
    api: dict[str, dict[str, Any]],
    in_process: dict[str, Any],
) -> None:
    served, alone = (api[kind] for kind in SERVERS)

    def rate(figures: dict[str, Any], measure: str) -> tuple[float, str]:
        if measure == "(e)":
            return figures["worker_peak_rss_mb"], f"{figures['worker_peak_rss_mb']:.0f} MB"
        name, unit, key = MEASURES[measure]
        run = figures[name]
        if run is None:
            return 0.0, "-"
        value = run[key]
        p99 = f", p99 {run['p99_ms']:.1f} ms"
        ratio = f" {value / base:.2f}x" if name.startswith("api_batch") else ""
        return value, f"{value:,.0f} {unit}{ratio}{p99}"

    print()
    print(f"(a) COPY baseline, txn of 1,000: {base:,.0f} rows/s (median of "
          + ", ".join(f"{r:,.0f}" for r in baseline["runs_rows_per_s"]) + ")")  # fmt: skip
    print(f"{'measure':32} {SERVERS[0]:>32} {SERVERS[1]:>32} {'ratio':>6}  target")
    for measure, (label, target) in LABELS.items():
        new, new_text = rate(served, measure)
        old, old_text = rate(alone, measure)
        ratio = f"{new / old:.2f}" if old else "-"
        print(f"{label:32} {new_text:>32} {old_text:>32} {ratio:>6}  {target}")
    print(f"{'(f) single events, no HTTP':32} {in_process['events_per_s']:,.0f} ev/s, p99 "
          f"{in_process['p99_ms']:.1f} ms (4 processes: the ceiling of (d))")  # fmt: skip
    failures = sum(
        figures[name]["non_200"]
        for figures in api.values()
        for name in ("api_batch_1000", "api_batch_100", "replay_batch_1000", "single_event")
    ) + sum(f["single_event_wrk"]["non_2xx"] for f in api.values() if f["single_event_wrk"])
    replayed = [f["replay_batch_1000"]["new_rows"] for f in api.values()]
    print(f"\nnon-200 answers: {failures}; new rows on replay: {replayed}")


# measure: (figures' key, unit, field)
MEASURES = {
    "(b) 1,000": ("api_batch_1000", "ev/s", "events_per_s"),
    "(b) 100": ("api_batch_100", "ev/s", "events_per_s"),
    "(c)": ("replay_batch_1000", "ev/s", "events_per_s"),
    "(d)": ("single_event", "req/s", "requests_per_s"),
    "(d) wrk": ("single_event_wrk", "req/s", "requests_per_s"),
}
LABELS = {
    "(b) 1,000": ("(b) API, batches of 1,000", "≥ 0.7x of (a)"),
    "(b) 100": ("(b) API, batches of 100", "≥ 0.4x of (a)"),
    "(c)": ("(c) replay of the 1,000s", "≥ (b), no new rows"),
    "(d)": ("(d) single events, 4 clients", "≥ 1,000/s, p99 ≤ 10 ms"),
    "(d) wrk": ("(d) single events, wrk", "≥ 1,000/s, p99 ≤ 10 ms"),
    "(e)": ("(e) gunicorn worker peak RSS", "≤ 150 MB"),
}


if __name__ == "__main__":
    main()
