"""Independent reads at once: a page that needs several reports runs them side by side,
each on a database connection of its own, as PostgreSQL's parallel query runs one large
scan on several processes.

Inside a transaction they run in turn on the caller's connection: another connection
would not see what the transaction wrote (a test's data, or a caller's own writes).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

from django.db import connections


def _alone(call: Callable[[], Any]) -> Any:
    """`call` in a worker thread; its connections (its own) closed when it is done."""
    try:
        return call()
    finally:
        connections.close_all()


def side_by_side(calls: dict[str, Callable[[], Any]], *, workers: int) -> dict[str, Any]:
    """Each call's result by name: on up to `workers` threads (and connections) at once,
    or one after the other inside a transaction or with one worker. A call's exception is
    raised here. The context (replica_reads and the like) goes with each call."""
    if workers <= 1 or any(connection.in_atomic_block for connection in connections.all()):
        return {name: call() for name, call in calls.items()}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="side-by-side") as pool:
        futures = {
            name: pool.submit(copy_context().run, _alone, call) for name, call in calls.items()
        }
        return {name: future.result() for name, future in futures.items()}
