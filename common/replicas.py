"""Reads from a replica, where they may lag: analytics only.

With DATABASE_REPLICA_URL set, code running inside `replica_reads()` reads from that
server: the ORM through ReplicaRouter, raw SQL through `reading()`. The margin, savings
and premium reports and the dashboard run inside it (their views say so). Everything else
reads and writes the primary: ingest, the invoice preview, and the close above all, whose
snapshot decides what an invoice bills (billing/invoicing/watermark.py). A lagging replica makes a
report a little behind; it never makes an invoice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

REPLICA = "replica"
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


@contextlib.contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside the block may come from the replica (when one is configured)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def read_alias() -> str:
    if _replica_reads.get() and REPLICA in settings.DATABASES:
        return REPLICA
    return DEFAULT_DB_ALIAS


def reading() -> BaseDatabaseWrapper:
    """The connection raw reads use here: the replica's inside `replica_reads()`."""
    return connections[read_alias()]


class ReplicaRouter:
    """The ORM's reads inside `replica_reads()` go to the replica; writes, and every
    read elsewhere, to the primary. Only the primary is migrated (the replica follows)."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two servers

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS
