"""Monthly partitions of the events table.

`metering_usageevent` is partitioned by range of `timestamp`, one partition per UTC month
(`metering_usageevent_y2026m11`), so that an old month can be detached for retention in a
moment instead of deleted row by row for hours. A default partition catches an event whose
month has no partition yet (a late event for a month before the first partition, or beat
not running): it is stored all the same, and the next `event_partitions_ensure` moves it
into its own month's partition.

A partition is created detached (`CREATE TABLE … (LIKE …)`), filled with its month's rows
from the default partition, and then attached: ATTACH locks the parent in SHARE UPDATE
EXCLUSIVE mode, which does not block ingest, where `CREATE TABLE … PARTITION OF` would
take an ACCESS EXCLUSIVE lock on the parent for the whole statement.

The exactly-once key of an event lives in `metering_eventkey`, not here: a unique index
on a partitioned table must include the partition key, and the client's event id alone is
the key. For the same reason the primary key here is (id, timestamp); `id` alone is
unique by its identity sequence, and Django addresses rows by it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from api.errors import ApiError, ErrorDetail

logger = logging.getLogger(__name__)

EVENTS_TABLE = "metering_usageevent"
DEFAULT_PARTITION = f"{EVENTS_TABLE}_default"
# Serialises partition changes (two beat runs, a command and a beat run): an arbitrary
# constant, the same for every process.
_PARTITIONS_LOCK = 7_211_046_001


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A UTC calendar month, the span of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def parse(cls, text: str) -> Month:
        """ "2026-11" -> Month(2026, 11)."""
        year, _, month = text.partition("-")
        parsed = cls(int(year), int(month))
        if not 1 <= parsed.month <= 12:
            raise ValueError(f"no month {text!r}")
        return parsed

    def next(self, months: int = 1) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    @property
    def partition(self) -> str:
        return f"{EVENTS_TABLE}_y{self.year:04d}m{self.month:02d}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def partition_month(name: str) -> Month | None:
    """The month of a partition named by `Month.partition`; None for any other table."""
    prefix = f"{EVENTS_TABLE}_y"
    if not name.startswith(prefix) or len(name) != len(prefix) + 7 or name[-3] != "m":
        return None
    try:
        return Month(int(name[-7:-3]), int(name[-2:]))
    except ValueError:
        return None


def attached_months(cursor: CursorWrapper) -> set[Month]:
    """The months that have a partition attached to the events table."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        [EVENTS_TABLE],
    )
    return {month for (name,) in cursor.fetchall() if (month := partition_month(name))}


def partition_attach(cursor: CursorWrapper, month: Month) -> None:
    """Create the month's partition and attach it, moving the month's rows out of the
    default partition. Call inside a transaction holding the partitions lock."""
    table, start, end = month.partition, month.start, month.end
    bound = f"{table}_bound"
    # No event of the month may reach the default partition between the move and the
    # attach (ATTACH would then fail on it), so the default is locked until commit. The
    # lock ATTACH itself takes on it (ACCESS EXCLUSIVE) is taken first, not upgraded to,
    # so that a transaction reading and then writing the events cannot deadlock with it;
    # the default holds a few rows at most, so the wait is short.
    cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        f"CREATE TABLE {table} (LIKE {EVENTS_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    moved = _rows_move_from_default(cursor, table=table, start=start, end=end)
    # A CHECK matching the bound lets ATTACH skip scanning the new table; it is dropped
    # once the partition bound holds the same.
    cursor.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT {bound}"
        ' CHECK ("timestamp" >= %s AND "timestamp" < %s)',
        [start, end],
    )
    cursor.execute(
        f"ALTER TABLE {EVENTS_TABLE} ATTACH PARTITION {table} FOR VALUES FROM (%s) TO (%s)",
        [start, end],
    )
    cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {bound}")
    logger.info("events partition %s attached (%d rows moved from the default)", table, moved)


def _rows_move_from_default(
    cursor: CursorWrapper, *, table: str, start: datetime, end: datetime
) -> int:
    cursor.execute(
        f"""WITH moved AS (
            DELETE FROM {DEFAULT_PARTITION} WHERE "timestamp" >= %s AND "timestamp" < %s
            RETURNING *
        ) INSERT INTO {table} SELECT * FROM moved""",  # noqa: S608 -- names are constants
        [start, end],
    )
    return cursor.rowcount


def _months_in_default(cursor: CursorWrapper) -> set[Month]:
    cursor.execute(
        f"""SELECT DISTINCT date_trunc('month', "timestamp" AT TIME ZONE 'UTC')
        FROM {DEFAULT_PARTITION}"""  # noqa: S608 -- a constant name
    )
    return {Month(first.year, first.month) for (first,) in cursor.fetchall()}


def event_partitions_ensure(
    *, now: datetime | None = None, ahead: int | None = None
) -> list[Month]:
    """Create the partitions of this month and of the `ahead` months after it
    (METERING_EVENT_PARTITIONS_AHEAD), and of every month with events waiting in the
    default partition; return the months created. Safe to run any number of times, and
    at once from several processes."""
    now = now or timezone.now()
    ahead = settings.METERING_EVENT_PARTITIONS_AHEAD if ahead is None else ahead
    current = Month.of(now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PARTITIONS_LOCK])
        wanted = {current.next(i) for i in range(ahead + 1)} | _months_in_default(cursor)
        missing = sorted(wanted - attached_months(cursor))
        for month in missing:
            partition_attach(cursor, month)
    return missing


def event_partition_detach(*, month: Month, now: datetime | None = None) -> str:
    """Detach a month's partition from the events table for retention and return its
    name: the table stays, with its rows, outside every read of payback, for the operator
    to dump and drop. Refused while events of the month may still arrive (its end is
    within METERING_LATE_EVENT_WINDOW_DAYS) and for a month without a partition."""
    now = now or timezone.now()
    still_open = month.end + timedelta(days=settings.METERING_LATE_EVENT_WINDOW_DAYS)
    if still_open > now:
        raise ApiError(
            [
                ErrorDetail(
                    "month_still_open",
                    f"Events of {month} may still arrive until {still_open:%Y-%m-%d} (the"
                    " late event window); it cannot be detached before.",
                    field="month",
                )
            ]
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PARTITIONS_LOCK])
        if month not in attached_months(cursor):
            raise ApiError(
                [ErrorDetail("no_partition", f"No attached partition for {month}.", field="month")]
            )
        cursor.execute(f"ALTER TABLE {EVENTS_TABLE} DETACH PARTITION {month.partition}")
    logger.info("events partition %s detached", month.partition)
    return month.partition
