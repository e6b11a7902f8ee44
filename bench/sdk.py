"""SDK benchmark: what recording costs the caller, and how fast the SDK's sender stores.

Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/payback .venv/bin/python
bench/sdk.py` (or through `config.embedded exec`). In one run, in bench/ingest.py's
scratch database (payback_bench), against one API as it is served (gunicorn behind
nginx, config/front.py):
  (a) the baseline: bench/ingest.py's binary COPY of the same events, transactions of
      1,000 rows, from as many connections as the API has gunicorn workers;
  (b) --calls `record_call`s from --threads threads through one `Payback` client: the
      in-process cost of each call (p50, p99; issue 16's target: p99 ≤ 50 µs) as the
      calling thread's CPU time, and as wall-clock time, which with every thread
      recording flat out also counts the waits for the GIL; and the events stored per
      second as a ratio to (a) (target ≥ 0.6×): the sender's rate, from when the calls
      stopped until `flush()` returns, and the rate over the whole burst, from the first
      call (while threads record without pause, CPython gives the sender the GIL too
      rarely to send anything: docs/performance.md).
Prints a table and writes bench/results/sdk.json. Options: --calls, --threads, --customers,
--senders.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from ingest import (  # bench/ingest.py (the script folder is on sys.path)
    create_key_and_customers,
    database_urls,
    free_port,
    fresh_database,
    make_events,
    run_baseline,
    start_server,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def calls_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """bench/ingest.py's events as record_call's arguments."""
    calls = []
    for event in events:
        call = {
            "id": event["id"], "customer": event["customer"], "provider": event["provider"],
            "model": event["model"], "input_tokens": event["input_tokens"],
            "output_tokens": event["output_tokens"],
            "cache_read_tokens": event["cache_read_tokens"], "feature": event["feature"],
            "outcome": event["outcome"], "user": event["user"],
            "timestamp": datetime.fromisoformat(event["timestamp"]),
        }  # fmt: skip
        if "cost" in event:
            call["cost"] = event["cost"]
        calls.append(call)
    return calls


def record_from_threads(
    url: str, key: str, calls: list[dict[str, Any]], threads: int, senders: int
) -> dict[str, Any]:
    from payback_client import Payback

    payback = Payback(api_key=key, base_url=url, max_queue=len(calls) + 1, senders=senders)
    costs: list[list[int]] = [[] for _ in range(threads)]  # wall clock, ns
    cpu: list[list[int]] = [[] for _ in range(threads)]  # the calling thread's CPU time
    shares = [calls[n::threads] for n in range(threads)]
    start = threading.Barrier(threads + 1)

    def work(number: int) -> None:
        own, used, record = costs[number], cpu[number], payback.record_call
        clock, thread_clock = time.perf_counter_ns, time.thread_time_ns
        start.wait()
        for call in shares[number]:
            before, before_cpu = clock(), thread_clock()
            record(**call)
            used.append(thread_clock() - before_cpu)
            own.append(clock() - before)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    recorded = time.perf_counter() - began
    delivered_while_recording = payback.stats.delivered
    flushed = payback.flush(timeout=600)
    stored_in = time.perf_counter() - began
    payback.close()
    each = sorted(c for own in costs for c in own)
    each_cpu = sorted(c for used in cpu for c in used)
    return {
        "calls": len(each),
        "cpu_p50_us": each_cpu[len(each_cpu) // 2] / 1000,
        "cpu_p99_us": each_cpu[int(len(each_cpu) * 0.99)] / 1000,
        "p50_us": each[len(each) // 2] / 1000,
        "p99_us": each[int(len(each) * 0.99)] / 1000,
        "max_us": each[-1] / 1000,
        "recorded_s": recorded,
        "stored_s": stored_in,
        "flushed": flushed,
        "events_per_s": len(each) / stored_in,
        # Once the callers stopped: what was left, sent without them taking the CPU.
        "left_after_recording": len(each) - delivered_while_recording,
        "left_per_s": (len(each) - delivered_while_recording) / (stored_in - recorded),
        "failed": payback.stats.failed,
        "retries": payback.stats.retries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4, help="the client's `senders`")
    options = parser.parse_args()

    from config import front
    from config.gunicorn import workers

    admin, bench_conninfo = database_urls()
    env = fresh_database(admin, bench_conninfo)
    env["GUNICORN_WORKERS"] = str(workers)
    env["API_KEY_RATE_LIMIT"] = "0"
    env["LOG_LEVEL"] = "WARNING"
    key = create_key_and_customers(env, options.customers)
    events = make_events(options.calls, options.customers, seed=1)

    print(f"baseline: binary COPY, {workers} connections, 3 runs ...", flush=True)
    baseline = run_baseline(bench_conninfo, events, workers, repeats=3)
    port = free_port()
    processes = start_server("nginx+gunicorn", env, port)
    try:
        print(f"{options.calls:,} record_calls from {options.threads} threads ...", flush=True)
        sdk = record_from_threads(
            f"http://127.0.0.1:{port}", key, calls_of(events), options.threads, options.senders
        )
    finally:
        front.stop(processes)
    with psycopg.connect(bench_conninfo) as conn:
        stored = conn.execute("SELECT count(*) FROM metering_usageevent").fetchone()
    sdk["stored"] = stored[0] if stored else 0
    ratio = sdk["events_per_s"] / baseline["rows_per_s"]
    sender_ratio = sdk["left_per_s"] / baseline["rows_per_s"]

    print()
    print(f"(a) COPY baseline, txn of 1,000: {baseline['rows_per_s']:,.0f} rows/s")
    print(f"(b) record_call, the caller's CPU time: p50 {sdk['cpu_p50_us']:.1f} µs, "
          f"p99 {sdk['cpu_p99_us']:.1f} µs (target p99 ≤ 50 µs)")  # fmt: skip
    print(f"    wall clock, with {options.threads} threads recording flat out and the "
          f"sender sharing the GIL: p50 {sdk['p50_us']:.1f} µs, p99 {sdk['p99_us']:.1f} µs, "
          f"max {sdk['max_us']:,.0f} µs")  # fmt: skip
    print(f"    stored {sdk['stored']:,} of {sdk['calls']:,}; failed {sdk['failed']}, "
          f"retries {sdk['retries']}")  # fmt: skip
    print(f"    the sender's rate, from when the calls stopped ({sdk['left_after_recording']:,} "
          f"still queued) until flush(): {sdk['left_per_s']:,.0f} events/s, "
          f"{sender_ratio:.2f}× (a) (target ≥ 0.6×)")  # fmt: skip
    print(f"    over the whole burst, first call ({sdk['recorded_s']:.2f} s of recording) until "
          f"flush(): {sdk['events_per_s']:,.0f} events/s, {ratio:.2f}× (a) (while threads "
          f"record flat out the sender waits for the GIL: docs/performance.md)")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sdk.json").write_text(
        json.dumps(
            {
                "options": vars(options),
                "baseline_copy": baseline,
                "sdk": sdk,
                "sender_ratio": sender_ratio,
                "burst_ratio": ratio,
            },
            indent=2,
        )
    )
    print(f"written to {RESULTS / 'sdk.json'}")


if __name__ == "__main__":
    main()
