"""Enqueueing with the broker up, down and frozen: what a close of many customers pays
for the tasks it sends after its commit (a push per invoice, a breakdown per chunk).

Run with `.venv/bin/python -m config.embedded exec .venv/bin/python bench/enqueue.py`
(needs Debian's redis-server, which `make test` installs). It starts a private Redis
server, then times --tasks enqueues (common.queue.enqueue) of a task nobody consumes:
  - up: the Redis server answering (the baseline);
  - down: a port where nothing listens (connection refused);
  - frozen: the Redis server stopped with SIGSTOP (connections accepted, nothing
    answered), given at most --give-up seconds;
and prints each time and its ratio to the baseline. Target (issue 13): down and frozen
fail fast, not ~0.6 s per task in Celery's publish retries. Writes
bench/results/enqueue.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


class GaveUp(Exception):
    pass


def timed_enqueues(url: str, tasks: int, give_up: float) -> dict[str, float | int | bool]:
    from common.queue import enqueue
    from config.celery import app
    from metering.tasks import price_unpriced_events

    app.conf.broker_url = app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None

    def stop(signum: int, frame: object) -> None:
        raise GaveUp

    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, give_up)
    sent = done = 0
    began = time.perf_counter()
    try:
        for n in range(tasks):
            sent += enqueue(price_unpriced_events, n)
            done += 1
    except GaveUp:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {
        "seconds": time.perf_counter() - began,
        "attempted": done,
        "sent": sent,
        "finished": done == tasks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=201)
    parser.add_argument("--give-up", type=float, default=120.0)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:1/0"  # replaced per case below
    import django

    django.setup()
    from config.embedded import redis_start

    folder = Path(tempfile.mkdtemp(prefix="payback-enqueue-"))
    server, url = redis_start(folder)
    try:
        results = {"up": timed_enqueues(url, options.tasks, options.give_up)}
        results["down"] = timed_enqueues("redis://127.0.0.1:1/0", options.tasks, options.give_up)
        os.kill(server.pid, signal.SIGSTOP)
        results["frozen"] = timed_enqueues(url, options.tasks, options.give_up)
        os.kill(server.pid, signal.SIGCONT)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "enqueue.json").write_text(json.dumps(results, indent=2))
    base = results["up"]["seconds"]
    print(f"\n{options.tasks} enqueues       seconds   per task    ratio to up")
    for case, figures in results.items():
        note = "" if figures["finished"] else f"  (gave up after {figures['attempted']})"
        per_task_ms = figures["seconds"] / options.tasks * 1000
        print(
            f"{case:16} {figures['seconds']:10.3f} {per_task_ms:8.2f} ms"
            f" {figures['seconds'] / base:10.1f}×   sent {figures['sent']}{note}"
        )


if __name__ == "__main__":
    main()
