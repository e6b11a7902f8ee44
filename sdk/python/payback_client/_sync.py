"""The client for threaded code: records go to a queue that a daemon thread sends."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from payback_client._authorizing import (
    Authorization,
    PaybackUnavailable,
    answer_of,
    authorize_request,
)
from payback_client._delivery import Request, Verdict, in_parallel, requests_of
from payback_client._recorder import Recorder
from payback_client._records import Money, Record

logger = logging.getLogger("payback_client")
# Between two attempts of an authorization, at most this long: the caller is waiting.
MAX_AUTHORIZE_WAIT = 2.0


class Payback(Recorder):
    """Records LLM calls and outcomes for payback from threaded code (WSGI apps, Celery
    workers, scripts). Recording never blocks and never raises (but for misuse: a
    missing customer, money as a float); a daemon thread sends the records in batches
    of up to `batch_size`, at least every `flush_interval` seconds, and retries until
    payback has them. `flush()` waits for what was recorded so far; `close()` (also run
    at interpreter exit) flushes and stops. Safe across `fork`: a child process starts
    its own sender, with an empty queue (its parent sends what was queued before)."""

    def _setup(self) -> None:
        self._ask_client: httpx.Client | None = None
        self._ask_pid = 0
        self._start()
        # Started now, not at the first record: starting takes the sender a few dozen
        # hand-overs of the GIL, each up to a switch interval (5 ms) while callers record
        # flat out, which delayed its first batch by a quarter of a second. (It sends too
        # what an earlier process left in the spool.)
        self._ensure_sender()
        this = weakref.ref(self)
        atexit.register(_close_at_exit, this)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(this))

    def _start(self) -> None:
        self._thread: threading.Thread | None = None
        self._sending = False  # the sender thread runs
        self._starting = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()  # send what is queued, then end
        self._abandon = threading.Event()  # stop retrying: close's time is up

    # Recording -----------------------------------------------------------------------------

    def _enqueue(self, record: Record) -> None:
        if self._closed:
            self._outbox.fail([record], "closed", "Recorded after the client was closed.")
            return
        if not self._sending:  # a flag, not Thread.is_alive(), which takes a lock
            self._ensure_sender()
        if self._outbox.put(record) and self._outbox.batch_ready() and not self._wake.is_set():
            self._wake.set()

    def _ensure_sender(self) -> None:
        with self._starting:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="payback-sender", daemon=True
                )
                self._sending = True
                self._thread.start()

    # Sending -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._sender_loop()
        finally:  # stopped by close(), or by a bug of the SDK's: the next record restarts it
            self._sending = False

    def _sender_loop(self) -> None:
        outbox = self._outbox
        helpers = Helpers(outbox.senders)
        with (
            httpx.Client(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout
            ) as http,
            helpers,
        ):
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                # Batches of calls go to the helpers as they come, each helper taking the
                # next as soon as it is done; the rest waits for them, and goes in order.
                while records := outbox.next_records():
                    together, in_order = in_parallel(requests_of(records, outbox.batch_size))
                    for request in together:
                        helpers.give(functools.partial(self._send, http, [request]))
                    if in_order:
                        helpers.wait()
                        self._send(http, in_order)
                    outbox.batch_done()
                helpers.wait()
                outbox.batch_done()
                if self._stopping.is_set():
                    return

    def _send(self, http: httpx.Client, requests: list[Request]) -> None:
        todo = deque(requests)
        while todo:
            if self._abandon.is_set():
                self._outbox.give_up(todo)
                return
            request = todo.popleft()
            verdict = self._post(http, request)
            todo.extendleft(reversed(verdict.then))
            if verdict.delay:
                self._pause(verdict.delay, todo)

    def _pause(self, seconds: float, todo: deque[Request]) -> None:
        """Wait before a retry, spilling to the spool meanwhile (an outage may last)."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0 and not self._abandon.is_set():
            self._abandon.wait(min(left, self.flush_interval))
            self._outbox.keep_leases(todo)

    def _post(self, http: httpx.Client, request: Request) -> Verdict:
        try:
            body, headers = self._outbox.headers(request.body())
            response = http.post(request.path, content=body, headers=headers)
        except Exception as error:
            return self._outbox.unanswered(request, error)
        return self._outbox.answered(
            request, response.status_code, response.headers, response.content
        )

    # Authorizing (answered at once: sent from the caller's thread) ----------------------

    def authorize(
        self,
        *,
        customer: str | None = None,
        amount: Money | None = None,
        outcome_type: str | None = None,
        quantity: int | None = None,
        user: str | None = None,
        ttl: int | None = None,
        id: str | None = None,
    ) -> Authorization:
        """May the customer spend this now? (`POST /v1/customers/{id}/authorize`.) The
        answer, with its reservation when allowed. Asked again (same id, so the same
        reservation) on no answer, 429 or 5xx, up to `authorize_attempts` times; then
        PaybackUnavailable. A request payback refuses raises PaybackError."""
        return self.authorize_sent(
            authorize_request(
                customer=customer, amount=amount, outcome_type=outcome_type,
                quantity=quantity, user=user, ttl=ttl, id=id,
            )
        )  # fmt: skip

    def authorize_sent(self, request: tuple[str, dict[str, Any], str]) -> Authorization:
        path, body, _ = request
        problem = "no answer"
        for attempt in range(self.authorize_attempts):
            try:
                response = self._asking().post(path, json=body)
            except httpx.TransportError as error:
                wait, problem = self._outbox.delay(attempt), str(error)
            else:
                answer = answer_of(response.status_code, response.headers, response.content)
                if isinstance(answer, Authorization):
                    return answer
                wait, problem = (
                    max(answer, self._outbox.delay(attempt)),
                    f"HTTP {response.status_code}",
                )
            if attempt + 1 < self.authorize_attempts:
                time.sleep(min(wait, MAX_AUTHORIZE_WAIT))
        raise PaybackUnavailable(0, [{"code": "unavailable", "message": problem}])

    def _asking(self) -> httpx.Client:
        """The HTTP client for answers the caller waits for (this process's own)."""
        if self._ask_client is None or self._ask_pid != os.getpid():
            self._ask_client = httpx.Client(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout
            )
            self._ask_pid = os.getpid()
        return self._ask_client

    # Flush and close -----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is stored by payback or reported to
        `on_error`; False if `timeout` seconds passed first."""
        outbox = self._outbox
        until = None if timeout is None else time.monotonic() + timeout
        if self._thread is None or not self._thread.is_alive():
            self._ensure_sender()
        self._wake.set()
        with outbox.settled:
            if not outbox.settled.wait_for(lambda: outbox.pending == 0, timeout):
                return False
        while outbox.spool is not None and outbox.spool.count():
            if until is not None and time.monotonic() >= until:
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush for up to `timeout` seconds (`shutdown_timeout` by default), then stop
        the sender; what could not be sent by then is reported as `closed`. Recording
        after it is reported as `closed` too. Returns whether everything was sent."""
        if self._closed:
            return self._outbox.pending == 0
        self._closed = True
        flushed = self.flush(self.shutdown_timeout if timeout is None else timeout)
        self._abandon.set()
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1)
        self._outbox.closing()
        if self._ask_client is not None and self._ask_pid == os.getpid():
            self._ask_client.close()
        return flushed

    def __enter__(self) -> Payback:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Helpers:
    """The threads that send batches of calls at the same time, made by the sender thread
    when it starts (daemon, like it). Not a ThreadPoolExecutor: that one takes no work
    once the interpreter is shutting down, which is when `close()` runs at exit. At most
    two jobs per thread wait, so that the sender does not take records far ahead."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self.room = threading.Semaphore(2 * count)
        self.idle = threading.Condition()
        self.running = 0  # jobs given and not ended
        for _ in range(count):
            threading.Thread(target=self._work, name="payback-sender", daemon=True).start()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                job()
            except Exception:  # _send catches what it expects: this is the SDK's own bug
                logger.exception("payback_client sender failed")
            finally:
                self.room.release()
                with self.idle:
                    self.running -= 1
                    self.idle.notify_all()

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """The sender ends: so do its helpers (each takes one stop)."""
        for _ in range(self.count):
            self.jobs.put(None)

    def give(self, job: Callable[[], object]) -> None:
        """Run `job` on a helper; waits while every helper has two jobs waiting."""
        self.room.acquire()
        with self.idle:
            self.running += 1
        self.jobs.put(job)

    def wait(self) -> None:
        """Until every job given has ended."""
        with self.idle:
            self.idle.wait_for(lambda: self.running == 0)


def _close_at_exit(client: weakref.ref[Payback]) -> None:
    found = client()
    if found is not None:
        found.close()


def _restart_in_child(client: weakref.ref[Payback]) -> None:
    """In a forked child: no sender thread survived the fork, and locks another thread
    held may be held forever. New ones, an empty queue and new counters."""
    found = client()
    if found is None:
        return
    found._outbox.reset()
    found._outbox.stats = type(found._outbox.stats)()
    found._start()
