"""Skipping a dependency that just failed.

A frozen broker or cache makes each call wait out its whole socket timeout. After one
such failure a process goes without that dependency for a few seconds (the queue leaves
the work to its sweeps, the rate limits count locally) instead of making every caller
wait in turn.
"""

from __future__ import annotations

import time

import redis.exceptions

# What a dependency that is down, frozen or unreachable raises (a socket's timeout is an
# OSError; redis-py wraps its own).
UNREACHABLE: tuple[type[Exception], ...] = (OSError, redis.exceptions.RedisError)


class Backoff:
    """Per process: which dependencies (by name) failed moments ago."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}  # name -> time.monotonic() to try again from
        self._why: dict[str, str] = {}  # name -> what its last failure was

    def active(self, name: str) -> bool:
        return time.monotonic() < self._until.get(name, 0.0)

    def failed(self, name: str, seconds: float, why: str = "") -> None:
        self._until[name] = time.monotonic() + seconds
        self._why[name] = why

    def why(self, name: str) -> str:
        return self._why.get(name, "")
