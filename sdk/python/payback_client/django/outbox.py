"""Recording into the backend's own database, and sending what was recorded."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payback_client._delivery import Failure, Stats
from payback_client._recorder import Recorder
from payback_client._records import Record
from payback_client._sync import Payback
from payback_client.django.models import OutboxRecord

logger = logging.getLogger("payback_client")


class TransactionalOutbox(Recorder):
    """The recording surface (record_call, record_outcome, succeed, fail, reverse, the
    scopes), writing each record as a row in the caller's transaction on database
    `using`. Unlike the clients, a failure to write raises: it is the caller's
    transaction's failure, and nothing is half-recorded."""

    def __init__(self, using: str = "default") -> None:  # nothing is sent from here
        self.using = using

    def _setup(self) -> None:
        pass

    @property
    def stats(self) -> Stats:
        raise AttributeError("the outbox keeps no counts: its rows are its record")

    def _enqueue(self, record: Record) -> None:
        OutboxRecord.objects.using(self.using).create(
            kind=record.kind, record_id=record.id, body=record.body
        )

    def _record(self, record: Record) -> str:
        self._enqueue(record)
        return record.id


outbox = TransactionalOutbox()


@dataclass(frozen=True, slots=True)
class Sent:
    sent: int  # stored by payback (or already there): deleted from the outbox
    refused: int  # refused by payback: kept, with the error
    unsent: int  # not answered in time: still in the outbox for the next run


_sender: Payback | None = None
_sender_pid = 0
_refusals: list[Failure] = []
_sending = threading.Lock()


def _client() -> Payback:
    """One sending client per process (made from PAYBACK_API_KEY and PAYBACK_URL, as
    Django settings or environment variables)."""
    global _sender, _sender_pid
    if _sender is None or _sender_pid != os.getpid():
        _sender = Payback(
            api_key=getattr(settings, "PAYBACK_API_KEY", None) or os.environ.get("PAYBACK_API_KEY"),
            base_url=getattr(settings, "PAYBACK_URL", None) or os.environ.get("PAYBACK_URL"),
            on_error=_refusals.append,
        )
        _sender_pid = os.getpid()
    return _sender


def outbox_send(*, batch_size: int = 1000, timeout: float = 60, using: str = "default") -> Sent:
    """Send up to `batch_size` of the oldest unsent rows and delete those payback has.
    The rows stay locked (FOR UPDATE SKIP LOCKED) until then, so that two senders never
    send the same rows at once; a sender that dies lets its rows go with its
    transaction, for the next run."""
    with _sending, transaction.atomic(using=using):
        rows = list(
            OutboxRecord.objects.using(using)
            .select_for_update(skip_locked=True)
            .filter(refused_at=None)
            .order_by("id")[:batch_size]
        )
        if not rows:
            return Sent(0, 0, 0)
        payback = _client()
        _refusals.clear()
        for row in rows:
            payback._record(Record(row.kind, row.record_id, row.body))
        if not payback.flush(timeout=timeout):
            logger.warning("payback did not answer within %s s: %d rows left", timeout, len(rows))
            return Sent(0, 0, len(rows))
        refused = {}
        for failure in _refusals:
            refused.setdefault(failure.record.id, []).append(f"{failure.code}: {failure.message}")
        kept = [row for row in rows if row.record_id in refused]
        for row in kept:
            row.refused_at, row.error = timezone.now(), "; ".join(refused[row.record_id])
        OutboxRecord.objects.using(using).bulk_update(kept, ["refused_at", "error"])
        OutboxRecord.objects.using(using).filter(
            pk__in=[row.pk for row in rows if row.record_id not in refused]
        ).delete()
        return Sent(len(rows) - len(kept), len(kept), 0)
