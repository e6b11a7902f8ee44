"""What both clients record and how: the calls, the outcomes and the scopes. Recording
queues a record and returns (O(1), no I/O); the client's sender delivers it."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import Token
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any

from payback_client import _records
from payback_client._authorizing import ReservationScope, authorize_request
from payback_client._context import CURRENT, Attribution, attributed
from payback_client._delivery import Failure, Outbox, Stats
from payback_client._ids import uuid7
from payback_client._records import Money, Record
from payback_client._spool import Spool

logger = logging.getLogger("payback_client")

_latest: list[Recorder] = []  # the client made last: what the wrappers record with


def default_recorder() -> Recorder:
    """The client made last in this process (wrappers use it unless given one)."""
    if not _latest:
        raise RuntimeError("make a Payback (or AsyncPayback) client first, or pass payback=")
    return _latest[0]


class Recorder(ABC):
    """The surface the sync and asyncio clients share: everything but sending. Their
    options are documented in the SDK's README."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        compress: bool = True,
        shutdown_timeout: float = 5.0,
        on_error: Callable[[Failure], None] | None = None,
        spool: str | os.PathLike[str] | None = None,
        max_spool_bytes: int = 512 * 1024 * 1024,
        spool_lease: float = 60.0,
        authorize_attempts: int = 3,
        senders: int = 4,
    ) -> None:
        key = api_key or os.environ.get("PAYBACK_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key= or set PAYBACK_API_KEY")
        url = base_url or os.environ.get("PAYBACK_URL") or "http://localhost:8000"
        self.base_url = url.rstrip("/")
        self._headers = {"Authorization": f"Api-Key {key}"}
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.authorize_attempts = authorize_attempts
        self._closed = False
        self._outbox = Outbox(
            max_queue=max_queue, batch_size=min(batch_size, 1000), max_attempts=max_attempts,
            backoff=backoff, max_backoff=max_backoff, on_error=on_error, compress=compress,
            spool=None if spool is None else Spool(
                spool, max_bytes=max_spool_bytes, lease=spool_lease
            ),
            senders=max(1, senders),
        )  # fmt: skip
        self._setup()
        _latest[:] = [self]

    @abstractmethod
    def _setup(self) -> None:
        """The client's own state: its sender is not started until something is recorded."""

    @abstractmethod
    def _enqueue(self, record: Record) -> None: ...

    def _record(self, record: Record) -> str:
        try:
            self._enqueue(record)
        except Exception:  # the SDK's own failure never reaches the caller's LLM call
            self._outbox.stats.errors += 1
            logger.exception("payback_client could not queue %s %s", record.kind, record.id)
        return record.id

    @property
    def stats(self) -> Stats:
        return self._outbox.stats

    def record_call(
        self,
        *,
        customer: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        cost: Money | None = None,
        outcome: str | None = None,
        user: str | None = None,
        feature: str | None = None,
        tier: str | None = None,
        prompt_hash: str | None = None,
        cache_hit: bool | None = None,
        properties: dict[str, Any] | None = None,
        reservation: str | None = None,
        timestamp: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Record one LLM call (`POST /v1/events`'s fields); returns its id. Customer,
        feature, user and outcome default to the enclosing scopes'. `input_tokens` counts
        every prompt token, cached ones included."""
        return self._record(
            _records.event(
                {
                    "id": id, "customer": customer, "provider": provider, "model": model,
                    "input_tokens": input_tokens, "output_tokens": output_tokens,
                    "cache_read_tokens": cache_read_tokens,
                    "cache_write_tokens": cache_write_tokens, "cost": cost,
                    "outcome": outcome, "user": user, "feature": feature, "tier": tier,
                    "prompt_hash": prompt_hash, "cache_hit": cache_hit,
                    "properties": properties, "reservation": reservation,
                    "timestamp": timestamp,
                }
            )
        )  # fmt: skip

    def record_outcome(
        self,
        *,
        type: str | None = None,
        customer: str | None = None,
        status: str | None = None,
        value: Money | None = None,
        currency: str | None = None,
        properties: dict[str, Any] | None = None,
        reservation: str | None = None,
        timestamp: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Record an outcome (`POST /v1/outcomes`'s fields): a new one (type and
        customer; the customer defaults to the scope's) or a status move of a known one
        (its id and the status). Returns its id."""
        if id is None and type is None:
            raise ValueError("a new outcome needs its type")
        return self._record(
            _records.outcome(
                id=id, type=type, customer=customer or CURRENT.get().customer,
                status=status, value=value, currency=currency, properties=properties,
                reservation=reservation, timestamp=timestamp,
            )
        )  # fmt: skip

    def succeed(
        self,
        id: str,
        *,
        value: Money | None = None,
        currency: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """A pending outcome succeeded (with its value, for a percentage price)."""
        return self.record_outcome(
            id=id, status="succeeded", value=value, currency=currency, timestamp=timestamp
        )

    def fail(self, id: str, *, timestamp: datetime | None = None) -> str:
        """A pending outcome failed: it is not billed; its calls still cost."""
        return self.record_outcome(id=id, status="failed", timestamp=timestamp)

    def reverse(self, id: str) -> str:
        """A succeeded outcome is reversed (within its plan's window): no longer billed."""
        return self._record(_records.reversal(id))

    def settle(self, reservation: str, amount: Money) -> str:
        """A reservation's work is done and bills `amount`: it stops holding (queued)."""
        return self._record(_records.settlement(reservation, amount))

    def release(self, reservation: str) -> str:
        """A reservation's work did not happen: it stops holding (queued)."""
        return self._record(_records.settlement(reservation, None))

    def reserve(
        self,
        *,
        customer: str | None = None,
        amount: Money | None = None,
        outcome_type: str | None = None,
        quantity: int | None = None,
        user: str | None = None,
        ttl: int | None = None,
        id: str | None = None,
    ) -> ReservationScope:
        """A block that spends: authorized on entry (`Refused` when payback says no, and
        the block does not run); what it records carries the reservation, which payback
        settles when it stores it; released on exit if nothing was recorded in it.
        `with` for Payback, `async with` for AsyncPayback."""
        return ReservationScope(
            self,
            authorize_request(
                customer=customer, amount=amount, outcome_type=outcome_type,
                quantity=quantity, user=user, ttl=ttl, id=id,
            ),
        )  # fmt: skip

    def outcome(
        self,
        type: str,
        *,
        customer: str | None = None,
        value: Money | None = None,
        currency: str | None = None,
        properties: dict[str, Any] | None = None,
        reservation: str | None = None,
        id: str | None = None,
    ) -> OutcomeScope:
        """A block that works towards one outcome: every call recorded inside it is
        attributed to it (and to its customer). On a normal exit the outcome succeeded,
        on an exception it failed (and the exception goes on), unless the block said
        otherwise (`succeed`, `fail`, `leave_pending`). `with` or `async with`."""
        return OutcomeScope(
            self, type=type, customer=customer, value=value, currency=currency,
            properties=properties, reservation=reservation, id=id,
        )  # fmt: skip

    def customer(self, external_id: str) -> AbstractContextManager[Attribution]:
        """Calls and outcomes recorded in the block are the customer's by default."""
        return attributed(customer=external_id)

    def feature(self, name: str) -> AbstractContextManager[Attribution]:
        """Calls recorded in the block are the feature's by default."""
        return attributed(feature=name)

    def user(self, user: str) -> AbstractContextManager[Attribution]:
        """Calls recorded in the block serve this end user (a premium seat) by default."""
        return attributed(user=user)


class OutcomeScope:
    """See Recorder.outcome. `id` is the outcome's id, made on entry when not given."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        type: str,
        customer: str | None,
        value: Money | None,
        currency: str | None,
        properties: dict[str, Any] | None,
        reservation: str | None,
        id: str | None,
    ) -> None:
        self._owner = recorder
        self.id = id or uuid7()
        self.type = type
        self.customer = customer
        _records.money("value", value)  # a float is refused here, not when the block ends
        self.value, self.currency = value, currency
        self.properties = properties
        self.reservation = reservation
        self.status: str | None = None  # said by the block; else decided on exit
        self._token: Token[Attribution] | None = None

    def succeed(self, *, value: Money | None = None, currency: str | None = None) -> None:
        self.status = "succeeded"
        _records.money("value", value)
        if value is not None:
            self.value, self.currency = value, currency or self.currency

    def fail(self) -> None:
        self.status = "failed"

    def leave_pending(self) -> None:
        """Record it pending: its success or failure is recorded later, by its id."""
        self.status = "pending"

    def __enter__(self) -> OutcomeScope:
        scope = CURRENT.get()
        self.customer = self.customer or scope.customer
        if self.customer is None:
            raise ValueError("an outcome needs a customer: pass customer= or use a scope")
        self._token = CURRENT.set(replace(scope, customer=self.customer, outcome=self.id))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._token is not None, "entered before exit"
        CURRENT.reset(self._token)
        status = self.status or ("failed" if kind is not None else "succeeded")
        self._recorder_record(status)

    async def __aenter__(self) -> OutcomeScope:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, traceback)

    def _recorder_record(self, status: str) -> None:
        record = _records.outcome(
            id=self.id, type=self.type, customer=self.customer, status=status,
            value=self.value, currency=self.currency, properties=self.properties,
            reservation=self.reservation, timestamp=None,
        )  # fmt: skip
        self._owner._record(record)


__all__ = ["Failure", "OutcomeScope", "Recorder"]
