"""The optional on-disk spool: a SQLite database in a folder, between the in-memory queue
and the network, so that an outage longer than memory holds, or a restart of the
process, loses nothing.

With a spool, the sender first writes what is queued in memory to the spool (one
transaction per batch), then sends the oldest spooled records and deletes them once
payback has them (or has refused them, reported). So a record is durable a flush
interval after it is recorded, and only what is still in memory then (at most a flush
interval's worth) can be lost to a crash.

Several processes may share one folder (gunicorn's workers, a restarted process): a
sender leases the rows it sends (`lease` seconds, renewed while it retries). The rows
of a process that died are sent by the next sender whose lease finds them free. A row
sent twice is stored once, since payback keeps each id once.

Bounded: past `max_bytes`, new records are refused and reported as `spool_full`. The
oldest are kept, because they are the ones a customer's invoice is already waiting for.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from payback_client._records import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    leased_until REAL NOT NULL DEFAULT 0
)
"""


class Spool:
    def __init__(self, folder: str | os.PathLike[str], *, max_bytes: int, lease: float) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.path = str(Path(folder) / "payback-spool.sqlite3")
        self.max_bytes = max_bytes
        self.lease = lease
        self._local = threading.local()
        with self._db() as db:
            db.execute(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (in this process: a forked child opens its own)."""
        found: tuple[int, sqlite3.Connection] | None = getattr(self._local, "db", None)
        if found is not None and found[0] == os.getpid():
            return found[1]
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a process crash
        self._local.db = (os.getpid(), db)
        return db

    def size(self) -> int:
        db = self._db()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * db.execute("PRAGMA page_size").fetchone()[0])

    def put(self, records: list[Record]) -> list[Record]:
        """Write `records` in one transaction; returns those refused for want of room."""
        if not records:
            return []
        if self.size() >= self.max_bytes:
            return records
        rows = [(r.kind, r.id, json.dumps(r.body, separators=(",", ":"))) for r in records]
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO records (kind, id, body) VALUES (?, ?, ?)", rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return []

    def claim(self, limit: int) -> list[Record]:
        """Lease up to `limit` of the oldest records no live sender holds."""
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "UPDATE records SET leased_until = ? WHERE seq IN (SELECT seq FROM records "
                "WHERE leased_until < ? ORDER BY seq LIMIT ?) RETURNING seq, kind, id, body",
                (now + self.lease, now, limit),
            ).fetchall()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return [Record(kind, id, json.loads(body), seq) for seq, kind, id, body in sorted(rows)]

    def renew(self, seqs: list[int]) -> None:
        """Still sending them (retrying through an outage): keep the lease."""
        self._set_lease(seqs, time.time() + self.lease)

    def release(self, seqs: list[int]) -> None:
        """Not sent after all (the client closed): free for the next sender at once."""
        self._set_lease(seqs, 0)

    def _set_lease(self, seqs: list[int], until: float) -> None:
        if seqs:
            self._db().execute(
                "UPDATE records SET leased_until = ? WHERE seq IN (SELECT value FROM json_each(?))",
                (until, json.dumps(seqs)),
            )

    def delete(self, seqs: list[int]) -> None:
        if seqs:
            self._db().execute(
                "DELETE FROM records WHERE seq IN (SELECT value FROM json_each(?))",
                (json.dumps(seqs),),
            )

    def count(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM records").fetchone()[0])
