"""What a close has seen: the one home of "what is late".

A close bills the facts its PostgreSQL snapshot sees, and nothing else: the calls, the
successes, the reversals and the prices whose transactions had committed when the close
took its snapshot. Every later commit is late, and the next close of that customer bills
it, once, as the difference it makes to the period it belongs to.

Why commit order and not a clock: a fact's time of receipt is stamped before its
transaction commits. A call stamped 10:00:00 whose transaction commits at 10:00:02 is
invisible to a close that reads at 10:00:01, and a clock rule ("received before the
close's time") would make the next close skip it too: it would fall between two invoices.
So each fact carries the id of the transaction that wrote it (an `xid8`: a column default
on calls, a trigger on outcomes, `pg_current_xact_id()` when a call is priced later), each
invoice keeps the snapshot of its close (`pg_current_snapshot()`), and
`pg_visible_in_snapshot(xid, snapshot)` says whether the close saw it. A snapshot sees
exactly the transactions that committed before it was taken, so:

- a customer's closes are ordered (each waits for the previous one's commit, under the
  subscription's row lock, before taking its snapshot), and each snapshot sees all that
  the previous one saw;
- a fact is billed by the first close whose snapshot sees it: its own period's close if
  it committed by then, else the next one as late usage or a credit;
- summed over a customer's invoices, each period is billed as it stands at the last
  close (billing/invoicing/selectors/rating.py: late lines are the difference between the period
  rated as of this close and as of the one before).

The stamps are NULL on facts recorded before this rule existed (seen by every snapshot;
billing migration 0006 stamps the ones still late), and a NULL snapshot here means "now":
the preview and the live margins read everything committed.
"""

from __future__ import annotations

from django.db import connection


def seen(xid: str, snapshot: str) -> str:
    """SQL: does the snapshot `snapshot` (a pg_snapshot expression, NULL: now) see the
    change stamped `xid` (an xid8 expression, NULL: from before the stamps)?"""
    return f"({xid} IS NULL OR {snapshot} IS NULL OR pg_visible_in_snapshot({xid}, {snapshot}))"


def call_recorded(snapshot: str, event: str = "e") -> str:
    """SQL: the call `event` (a metering_usageevent row) exists as of `snapshot`."""
    return seen(f"{event}.recorded_xid", snapshot)


def call_priced(snapshot: str, event: str = "e") -> str:
    """SQL: the call's cost is known as of `snapshot` (stored priced, or priced since)."""
    return (
        f"({call_recorded(snapshot, event)} AND {event}.cost IS NOT NULL"
        f" AND {seen(f'{event}.priced_xid', snapshot)})"
    )


def outcome_billable(snapshot: str, outcome: str = "o") -> str:
    """SQL: the outcome is a success to bill as of `snapshot`: its success seen, its
    reversal (if any) not."""
    return (
        f"({outcome}.status IN ('succeeded', 'reversed')"
        f" AND {seen(f'{outcome}.succeeded_xid', snapshot)}"
        f" AND NOT ({outcome}.status = 'reversed'"
        f" AND {seen(f'{outcome}.reversed_xid', snapshot)}))"
    )


def snapshot_take() -> str:
    """The snapshot of the current transaction's next statement, as text: what a close
    bills. Taken once the close holds its customers' locks (see periods_close)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_snapshot()::text")
        (snapshot,) = cursor.fetchone()
    return str(snapshot)
