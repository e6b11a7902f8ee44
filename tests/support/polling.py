"""The one way tests wait for something another process or thread does (a worker, a
server), and what a worker in this process reports."""

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from celery import signals

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], *, what: str = "the condition", timeout: float = 60, every: float = 0.05
) -> T:
    """`check()`'s first truthy answer, asked every `every` seconds; an AssertionError
    naming `what` if none comes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    raise AssertionError(f"waited {timeout} s for {what}")


@contextlib.contextmanager
def task_results(task_name: str) -> Iterator[list[Any]]:
    """The return values of `task_name`'s runs that succeed inside the block, as a worker
    in this process (the celery_worker fixture) reports them: proof that a task ran, where
    "nothing changed" alone would also hold if it never did."""
    results: list[Any] = []

    def succeeded(sender: Any = None, result: Any = None, **_: Any) -> None:
        if getattr(sender, "name", None) == task_name:
            results.append(result)

    signals.task_success.connect(succeeded, weak=False)
    try:
        yield results
    finally:
        signals.task_success.disconnect(succeeded)
