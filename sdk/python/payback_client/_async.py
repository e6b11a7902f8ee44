"""The client for asyncio code: the same recording, sent by a task on the running loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
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
from payback_client._sync import MAX_AUTHORIZE_WAIT

logger = logging.getLogger("payback_client")


class AsyncPayback(Recorder):
    """Payback's surface for asyncio applications (FastAPI, aiohttp, async workers):
    `record_call`, `record_outcome`, the scopes and the rest are the same and as cheap
    (no `await`: they queue and return); a task on the event loop that first records
    sends the batches. `await flush()` and `await close()`; close it before the loop
    ends (`async with AsyncPayback(...)` does), since no task outlives its loop."""

    def _setup(self) -> None:
        self._ask_client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._abandon: asyncio.Event | None = None

    # Recording -----------------------------------------------------------------------------

    def _enqueue(self, record: Record) -> None:
        if self._closed:
            self._outbox.fail([record], "closed", "Recorded after the client was closed.")
            return
        if self._outbox.put(record):
            self._kick(start=True)

    def _kick(self, *, start: bool) -> None:
        """Start the sender on the running loop if it is not running; wake it when a
        batch is ready. From a thread without a loop, the record waits for the sender."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and start and (self._task is None or self._task.done()):
            self._loop, self._wake, self._abandon = loop, asyncio.Event(), asyncio.Event()
            self._task = loop.create_task(self._run(), name="payback-sender")
        if self._wake is None or not (self._outbox.batch_ready() or not start):
            return
        if loop is self._loop:
            self._wake.set()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # Sending -------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=self.timeout
        ) as http:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                except TimeoutError:
                    pass
                self._wake.clear()
                # The spool (if any) is SQLite on disk: read and written off the loop.
                outbox = self._outbox
                while records := await asyncio.to_thread(outbox.next_records):
                    together, in_order = in_parallel(requests_of(records, outbox.batch_size))
                    await asyncio.gather(*(self._send(http, [r]) for r in together))
                    await self._send(http, in_order)
                    await asyncio.to_thread(outbox.batch_done)
                if self._stopping:
                    return

    async def _send(self, http: httpx.AsyncClient, requests: list[Request]) -> None:
        assert self._abandon is not None
        todo = deque(requests)
        while todo:
            if self._abandon.is_set():
                self._outbox.give_up(todo)
                return
            request = todo.popleft()
            verdict = await self._post(http, request)
            todo.extendleft(reversed(verdict.then))
            if verdict.delay:
                await self._pause(verdict.delay, todo)

    async def _pause(self, seconds: float, todo: deque[Request]) -> None:
        """Wait before a retry, spilling to the spool meanwhile (an outage may last)."""
        assert self._abandon is not None
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0 and not self._abandon.is_set():
            try:
                await asyncio.wait_for(self._abandon.wait(), min(left, self.flush_interval))
            except TimeoutError:
                pass
            await asyncio.to_thread(self._outbox.keep_leases, todo)

    async def _post(self, http: httpx.AsyncClient, request: Request) -> Verdict:
        try:
            body, headers = self._outbox.headers(request.body())
            response = await http.post(request.path, content=body, headers=headers)
        except Exception as error:
            return self._outbox.unanswered(request, error)
        return self._outbox.answered(
            request, response.status_code, response.headers, response.content
        )

    # Authorizing (answered at once: sent from the caller's task) ------------------------

    async def authorize(
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
        """Payback.authorize, awaited."""
        return await self.authorize_sent(
            authorize_request(
                customer=customer, amount=amount, outcome_type=outcome_type,
                quantity=quantity, user=user, ttl=ttl, id=id,
            )
        )  # fmt: skip

    async def authorize_sent(self, request: tuple[str, dict[str, Any], str]) -> Authorization:
        path, body, _ = request
        if self._ask_client is None:
            self._ask_client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout
            )
        problem = "no answer"
        for attempt in range(self.authorize_attempts):
            try:
                response = await self._ask_client.post(path, json=body)
            except httpx.TransportError as error:
                wait, problem = self._outbox.delay(attempt), str(error)
            else:
                answer = answer_of(response.status_code, response.headers, response.content)
                if isinstance(answer, Authorization):
                    return answer
                wait = max(answer, self._outbox.delay(attempt))
                problem = f"HTTP {response.status_code}"
            if attempt + 1 < self.authorize_attempts:
                await asyncio.sleep(min(wait, MAX_AUTHORIZE_WAIT))
        raise PaybackUnavailable(0, [{"code": "unavailable", "message": problem}])

    # Flush and close -----------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is stored by payback or reported to
        `on_error`; False if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        spool = self._outbox.spool
        while self._outbox.pending or (spool is not None and await asyncio.to_thread(spool.count)):
            self._kick(start=True)
            if self._wake is not None:
                self._wake.set()
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def close(self, timeout: float | None = None) -> bool:
        """Flush for up to `timeout` seconds (`shutdown_timeout` by default), then stop
        the sender; what could not be sent by then is reported as `closed`."""
        if self._closed:
            return self._outbox.pending == 0
        self._closed = True
        flushed = await self.flush(self.shutdown_timeout if timeout is None else timeout)
        self._stopping = True
        if self._abandon is not None and self._wake is not None:
            self._abandon.set()
            self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=self.timeout + 1)
        await asyncio.to_thread(self._outbox.closing)
        if self._ask_client is not None:
            await self._ask_client.aclose()
        return flushed

    async def __aenter__(self) -> AsyncPayback:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
