"""Gunicorn, the production server configuration (also used by `make run` and the bench).

Sync workers, one per core: the API's work is short, CPU-bound requests. Measured with
bench/ingest.py on 2 cores shared with PostgreSQL, 2 and 3 sync workers, and gthread
workers, were within the run-to-run noise of each other; fewer processes use less memory.
"""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", 1))
keepalive = 5
timeout = 60
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# Restart workers now and then so that a slow leak cannot grow without bound.
max_requests = 100_000
max_requests_jitter = 10_000


def child_exit(server: object, worker: object) -> None:
    """A worker that exits leaves its Prometheus samples to be merged, not counted live."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def post_worker_init(worker: object) -> None:
    """What a worker holds once Django is loaded (modules, settings, URL patterns, the
    admin) lives as long as the worker: frozen out of the garbage collector's sight, it
    is not walked again at every full collection. A dashboard at 10,000 customers makes
    enough objects to start several; each walked some 130,000 objects (about 50 ms of the
    page, docs/performance.md)."""
    gc.freeze()
