"""Rate limits: requests per API key, and failed authentications per client address.

Fixed windows counted in Django's cache (`cache.incr`, atomic in Redis and in the
per-process local memory cache). With the default local memory cache each process counts
its own requests, so N gunicorn workers allow up to N times the limit; set
`CACHE_URL=redis://…` for one count across processes. A refused request gets 429 with
`Retry-After` (seconds to the next window) and a JSON error.

A shared cache that fails (down, or frozen past CACHE_TIMEOUT_SECONDS) does not fail the
request: for CACHE_BACKOFF_SECONDS the process counts in its own memory, as with the
default cache, then tries the shared one again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from common.backoff import UNREACHABLE, Backoff

if TYPE_CHECKING:  # rest_framework.views imports the authentication, which imports this
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600}
_shared_cache = Backoff()
_local_counters = LocMemCache("payback-rate-limits", {})


def parse_rate(rate: str) -> tuple[int, int] | None:
    """'1000/s' -> (1000, 1); '' or '0' -> None (no limit)."""
    if not rate or rate == "0":
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period[:1]]


def _counter_key(scope: str, ident: str, window: int) -> str:
    return f"rl:{scope}:{ident}:{window}"


def window_hit(scope: str, ident: str, rate: str) -> float | None:
    """Count one hit in the current window of (scope, ident); the seconds until the
    window ends when the limit is exceeded, else None."""
    parsed = parse_rate(rate)
    if parsed is None:
        return None
    limit, seconds = parsed
    now = time.time()
    window = int(now // seconds)
    key = _counter_key(scope, ident, window)
    hits = _with_counters(lambda counters: _count(counters, key, seconds))
    if hits <= limit:
        return None
    return (window + 1) * seconds - now


def _with_counters(use: Callable[[BaseCache], int]) -> int:
    """`use` on the shared cache, or on this process' own counters while it fails."""
    if not _shared_cache.active("default"):
        try:
            return use(cache)
        except UNREACHABLE as unreachable:
            _shared_cache.failed("default", settings.CACHE_BACKOFF_SECONDS)
            logger.warning("rate limits count per process for now: %s", unreachable)
    return use(_local_counters)


def _count(counters: BaseCache, key: str, seconds: int) -> int:
    """One more hit on the window's counter: one cache operation but for the window's
    first hit (this runs on every API request)."""
    try:
        return counters.incr(key)
    except ValueError:  # the window's first hit (or its counter just expired)
        if counters.add(key, 1, timeout=seconds + 1):
            return 1
    try:
        return counters.incr(key)  # another process added it first
    except ValueError:  # and it expired since: this is the next window's first hit
        return 1


def window_count(scope: str, ident: str, rate: str) -> int:
    parsed = parse_rate(rate)
    if parsed is None:
        return 0
    _, seconds = parsed
    key = _counter_key(scope, ident, int(time.time() // seconds))
    return _with_counters(lambda counters: int(counters.get(key, 0)))


class ApiKeyRateThrottle(BaseThrottle):
    """API_KEY_RATE_LIMIT requests per window per API key (its prefix)."""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        prefix = getattr(request.user, "key_prefix", None)
        if prefix is None:  # an operator's session (docs), not a key
            return True
        retry_after = window_hit("key", prefix, settings.API_KEY_RATE_LIMIT)
        self.retry_after = None if retry_after is None else math.ceil(retry_after)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


def client_address(request: HttpRequest) -> str:
    # Behind a proxy, REMOTE_ADDR is the proxy's: configure the proxy to set it (e.g.
    # gunicorn's forwarded_allow_ips) rather than trusting X-Forwarded-For here.
    return request.META.get("REMOTE_ADDR", "") or "unknown"
