"""Independent reads at once: a page that needs several reports runs them side by side,
each on a database connection of its own, as PostgreSQL's parallel query runs one large
scan on several processes.

Inside a transaction they run in turn on the caller's connection: another connection
would not see what the transaction wrote (a test's data, or a caller's own writes).

Reads that need the same costly value share it through `Once`: the first to ask makes it,
the others wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any, Generic, TypeVar

from django.db import connections

T = TypeVar("T")


class Once(Generic[T]):
    """A value made once, on the first call, by whichever thread calls first; a call
    meanwhile waits for it. If making it raises, the next call tries again. (Waiting
    cannot deadlock side_by_side: the thread making the value waits on nothing else.)"""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._made: list[T] = []  # empty until made

    def __call__(self) -> T:
        with self._lock:
            if not self._made:
                self._made.append(self._make())
            return self._made[0]


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
