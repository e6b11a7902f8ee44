"""Delivery without I/O: the bounded queue between the callers and the sender, how queued
records become requests, and what to do with each answer. The thread sender (_sync.py)
and the asyncio one (_async.py) run the same loop around it with their own HTTP client.

At-least-once from here, exactly-once with the server: every record carries its id, so
a request sent again after a timeout whose first copy did arrive is answered as a
duplicate and stored once.

What an answer means for the records in the request:
- 2xx: delivered. Ids the server reports as conflicts (the same id with another payload:
  the first one is kept) are reported to `on_error`.
- 400, 409 naming items (`index`): those items are refused and reported; the others are
  sent again at once (the API takes a batch all or nothing, so one bad record must not
  hold up the rest).
- 429, 502, 503, 504, a timeout or no connection: sent again after a backoff (exponential,
  full jitter, at least the server's `Retry-After`), for as long as it takes.
- 413: the batch is split in halves; a single record that is still too large is refused.
- 415 for the encoding: compression is turned off and the request sent again.
- another 5xx: sent again up to `max_attempts` times, then refused.
- 401, 403, 404 and any other 4xx: the whole request is refused and reported.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from payback_client._records import Record
from payback_client._spool import Spool

logger = logging.getLogger("payback_client")

RETRIED_STATUSES = frozenset({429, 502, 503, 504})


def _json_encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


try:  # msgspec encodes a batch about 15× faster than json, when the backend has it
    from msgspec.json import encode as _msgspec_encode
except ImportError:  # pragma: no cover - depends on the backend's environment
    encode = _json_encode
else:
    encode = _msgspec_encode
COMPRESS_FROM_BYTES = 1024  # smaller bodies are not worth the CPU


@dataclass(frozen=True, slots=True)
class Failure:
    """A record payback did not store, and why (given to `on_error`)."""

    record: Record
    code: str  # the API's error code, or the SDK's: "conflict", "queue_full", "closed", …
    message: str
    status: int | None = None  # the HTTP status, when payback answered


@dataclass(slots=True)
class Stats:
    """What the client has done since it was made (in this process)."""

    recorded: int = 0  # accepted into the queue
    delivered: int = 0  # stored by payback, or already there (a duplicate)
    failed: int = 0  # refused by payback, or dropped by the SDK: each reported once
    retries: int = 0  # requests sent again
    errors: int = 0  # the SDK's own errors, logged


@dataclass(slots=True)
class Request:
    kind: str
    path: str
    records: list[Record]
    attempt: int = 0  # how many times it was sent already

    def body(self) -> bytes:
        if self.kind in ("event", "outcome"):
            key = "events" if self.kind == "event" else "outcomes"
            return encode({key: [r.body for r in self.records]})
        return encode(self.records[0].body)  # one record: its own body


# Records sent one by one, to their own path: after the batches taken with them.
_SINGLE_PATHS = {
    "reverse": "/v1/outcomes/{}/reverse",
    "settle": "/v1/reservations/{}/settle",
    "release": "/v1/reservations/{}/release",
}


def requests_of(records: Iterable[Record], batch_size: int) -> list[Request]:
    """Queued records as requests, in the order they were recorded per kind: events and
    outcome records in batches; each reversal, settle or release on its own after the
    batches taken with it (an outcome's success is sent before its reversal, a call
    before the settle of the reservation it ran under)."""
    events: list[Record] = []
    outcomes: list[Record] = []
    singles: list[Request] = []
    for record in records:
        if record.kind == "event":
            events.append(record)
        elif record.kind == "outcome":
            outcomes.append(record)
        else:
            path = _SINGLE_PATHS[record.kind].format(quote(record.id, safe=""))
            singles.append(Request(record.kind, path, [record]))
    batches = [
        Request(kind, path, chunk[start : start + batch_size])
        for kind, path, chunk in (
            ("event", "/v1/events", events),
            ("outcome", "/v1/outcomes", outcomes),
        )
        for start in range(0, len(chunk), batch_size)
    ]
    return batches + singles


def in_parallel(requests: list[Request]) -> tuple[list[Request], list[Request]]:
    """The event batches, which may be sent at the same time (their order does not
    matter to payback), and the rest, sent one by one after them in order (an outcome's
    status moves, reversals, settles)."""
    return [r for r in requests if r.kind == "event"], [r for r in requests if r.kind != "event"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after an answer: `then` is sent next (now, or after `delay` seconds),
    nothing when the request is over."""

    then: list[Request] = field(default_factory=list)
    delay: float = 0.0


def _retry_after(headers: Any) -> float:
    """Seconds the server asks to wait: `Retry-After` as seconds or as an HTTP date."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Outbox:
    """The queue between the callers and the sender: bounded (a full queue drops the new
    record, counted and reported, rather than block or grow), with the counters `flush`
    waits on and the policy for answers."""

    def __init__(
        self,
        *,
        max_queue: int,
        batch_size: int,
        max_attempts: int,
        backoff: float,
        max_backoff: float,
        on_error: Callable[[Failure], None] | None,
        compress: bool,
        spool: Spool | None,
        senders: int = 1,
    ) -> None:
        self.spool = spool
        self.senders = senders
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_error = on_error
        self.compress = compress  # wanted; used once the server says it takes gzip
        self.gzip_accepted = False
        self.stats = Stats()
        self.reset()

    def reset(self) -> None:
        """Empty, with new locks: at start, and in a forked child (its parent sends what
        was queued before the fork; locks held by other threads at the fork stay held)."""
        self.lock = threading.Lock()  # the sender's side; recording takes no lock
        self.settled = threading.Condition(self.lock)  # pending went down
        self.queue: deque[Record] = deque()
        self.inflight = 0  # taken from the queue, not yet settled
        self.finished_rows: list[int] = []  # spool rows sent or refused: to delete

    @property
    def pending(self) -> int:
        """Records queued or in flight (not yet in the spool, stored or reported)."""
        return len(self.queue) + self.inflight

    # The callers' side ------------------------------------------------------------------

    def put(self, record: Record) -> bool:
        """Queue `record`; False (and reported) when the queue is full. O(1), no I/O, and
        no lock: a deque's append is atomic, and callers in many threads would otherwise
        queue on the lock (the bound may be passed by a record per thread)."""
        if len(self.queue) >= self.max_queue:
            self.fail([record], "queue_full", f"The queue holds {self.max_queue} records.")
            return False
        self.queue.append(record)
        self.stats.recorded += 1  # a count for people: no lock for it
        return True

    def batch_ready(self) -> bool:
        return len(self.queue) >= self.batch_size

    # The sender's side ------------------------------------------------------------------

    def take(self) -> list[Record]:
        """Up to a batch of the oldest records (they stay pending until settled)."""
        with self.lock:
            count = min(len(self.queue), self.batch_size)
            self.inflight += count
            return [self.queue.popleft() for _ in range(count)]

    def next_records(self) -> list[Record]:
        """The next records to send: up to four batches per concurrent sender (so that one
        slow batch leaves the others busy), from memory, or with a spool, what memory held
        written to it first and then the oldest spooled records no other sender holds."""
        limit = self.batch_size * self.senders * 4
        if self.spool is None:
            records: list[Record] = []
            while len(records) < limit and (more := self.take()):
                records += more
            return records
        self.spill()
        return self.spool.claim(limit)

    def spill(self) -> None:
        """Write what is queued in memory to the spool: durable from here on."""
        assert self.spool is not None
        while records := self.take():
            refused = self.spool.put(records)
            self.settle(len(records))
            if refused:
                self.fail(refused, "spool_full", f"The spool is over {self.spool.max_bytes} bytes.")

    def keep_leases(self, requests: Iterable[Request]) -> None:
        """Between the retries of spooled records: spill, and keep holding them."""
        if self.spool is not None:
            self.spill()
            self.spool.renew([r.seq for q in requests for r in q.records if r.seq is not None])

    def batch_done(self) -> None:
        if self.spool is not None:
            with self.lock:
                rows, self.finished_rows = self.finished_rows, []
            self.spool.delete(rows)

    def finished(self, records: list[Record]) -> None:
        """Sent, or refused and reported: out of memory's count, or out of the spool."""
        rows = [r.seq for r in records if r.seq is not None]
        with self.lock:
            self.finished_rows += rows
        if len(rows) < len(records):
            self.settle(len(records) - len(rows))

    def settle(self, count: int) -> None:
        with self.lock:
            self.inflight -= count
            self.settled.notify_all()

    def headers(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if self.compress and self.gzip_accepted and len(body) >= COMPRESS_FROM_BYTES:
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body, compresslevel=1)  # fast: about 4× smaller already
        return body, headers

    def delay(self, attempt: int, floor: float = 0.0) -> float:
        """Exponential backoff with full jitter, never under the server's floor."""
        # 2**attempt, capped: a sender that retries for days must not overflow a float.
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(attempt, 30))
        return max(floor, random.uniform(0, ceiling))  # noqa: S311 (jitter, not a secret)

    def fail(
        self, records: list[Record], code: str, message: str, status: int | None = None
    ) -> None:
        with self.lock:
            self.stats.failed += len(records)
        for record in records:
            logger.warning("payback did not store %s %s: %s (%s)", record.kind, record.id,
                           message, code)  # fmt: skip
            if self.on_error is not None:
                try:
                    self.on_error(Failure(record, code, message, status))
                except Exception:  # the caller's callback must not stop the sender
                    self.stats.errors += 1
                    logger.exception("payback_client on_error callback raised")

    def unanswered(self, request: Request, error: Exception) -> Verdict:
        """No answer (refused, reset, timed out; or the SDK's own failure, logged): the
        same request again, later."""
        if isinstance(error, httpx.TransportError):
            logger.info("payback unreachable (%s): %s sent again", error, request.path)
        else:
            self.stats.errors += 1
            logger.error("payback_client failed sending %s", request.path, exc_info=error)
        return self._again(request, floor=0.0)

    def _again(self, request: Request, floor: float) -> Verdict:
        request.attempt += 1
        with self.lock:
            self.stats.retries += 1
        return Verdict([request], self.delay(request.attempt - 1, floor))

    def answered(self, request: Request, status: int, headers: Any, body: bytes) -> Verdict:
        """What to do after payback answered `request` with `status`."""
        accepts = (headers.get("accept-encoding") or "") if headers is not None else ""
        self.gzip_accepted = "gzip" in accepts.lower()
        if 200 <= status < 300:
            self._delivered(request, body)
            return Verdict()
        errors = _errors(body)
        if status in RETRIED_STATUSES:
            return self._again(request, floor=_retry_after(headers))
        if status == 415 and any(e.get("code") == "unsupported_content_encoding" for e in errors):
            self.compress = False
            return Verdict([request])
        if status == 413 and len(request.records) > 1:
            half = len(request.records) // 2
            return Verdict(
                [
                    Request(request.kind, request.path, request.records[:half]),
                    Request(request.kind, request.path, request.records[half:]),
                ]
            )
        if status >= 500:
            if request.attempt + 1 < self.max_attempts:
                return self._again(request, floor=_retry_after(headers))
        named = {e["index"] for e in errors if isinstance(e.get("index"), int)}
        if status in (400, 409) and named and request.kind in ("event", "outcome"):
            for index in sorted(named):
                if 0 <= index < len(request.records):
                    reasons = [e for e in errors if e.get("index") == index]
                    message = "; ".join(str(e.get("message")) for e in reasons)
                    code = reasons[0].get("code", "refused")
                    self.fail([request.records[index]], code, message, status)
            rest = [r for i, r in enumerate(request.records) if i not in named]
            self.finished([r for i, r in enumerate(request.records) if i in named])
            return Verdict([Request(request.kind, request.path, rest)] if rest else [])
        first = errors[0] if errors else {}
        self.fail(request.records, first.get("code", f"http_{status}"),
                  first.get("message", f"HTTP {status}"), status)  # fmt: skip
        self.finished(request.records)
        return Verdict()

    def _delivered(self, request: Request, body: bytes) -> None:
        conflicts: set[str] = set()
        if request.kind in ("event", "outcome"):
            try:
                conflicts = set(json.loads(body).get("conflicts") or ())
            except (ValueError, AttributeError):
                pass
        refused = [r for r in request.records if r.id in conflicts]
        if refused:
            message = "payback holds another record with this id: the first one is kept."
            self.fail(refused, "conflict", message)
        with self.lock:
            self.stats.delivered += len(request.records) - len(refused)
        self.finished(request.records)

    def give_up(self, requests: Iterable[Request]) -> None:
        """Requests still to send when `close()` ran out of time: dropped and reported,
        but for spooled ones, which wait in the spool for the next sender."""
        left = [record for request in requests for record in request.records]
        if self.spool is not None:
            self.spool.release([r.seq for r in left if r.seq is not None])
        self.dropped([r for r in left if r.seq is None])

    def dropped(self, records: list[Record]) -> None:
        """Records given up on: the client closed before they could be sent."""
        if records:
            self.fail(records, "closed", "The client closed before sending.")
            self.settle(len(records))

    def closing(self) -> None:
        """What is still in memory when the client closes: to the spool, or dropped."""
        if self.spool is not None:
            self.spill()
        while records := self.take():
            self.dropped(records)


def _errors(body: bytes) -> list[dict[str, Any]]:
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
