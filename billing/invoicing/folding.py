"""The running rollup's fold: a UTC day moves from being read call by call to being summed
in the rollup (billing/invoicing/selectors/running.py), once it is over.

The rollup holds the days before its horizon (RunningHorizon), kept by the triggers of
migrations/0003_running_rollup.py as late facts of those days arrive. Calls as they
happen are of the days from the horizon on, which the triggers leave alone and the
readers read call by call: ingest pays nothing for the rollup. Here, a day at a time
(one transaction each), the day at the horizon is summed and the horizon moves past it,
until it is `settings.RUNNING_FOLD_LAG_DAYS` days before today (default 1: today and
yesterday stay read call by call, so that the day's stragglers cost ingest nothing either).

The SQL lives beside the triggers (migrations/0003: running_fold_step, running_unfold),
so the fold sums a day exactly as they sum a statement. It takes the triggers' lock alone
(they take it shared): it waits for the writers that saw the old horizon to commit, so
its sums see their facts, and writers that come after wait for it, then see the new
horizon and add their facts of the folded day themselves. Facts are never counted twice
or missed; ingest waits for the length of one day's sums (about a second per million
calls of the day).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction


def running_fold(*, now: datetime) -> int:
    """Fold each day before `now`'s UTC date less RUNNING_FOLD_LAG_DAYS into the rollup,
    one transaction a day. Safe to run twice or at once (the second waits, then finds the
    days folded). Returns how many days it folded."""
    target = now.astimezone(UTC).date() - timedelta(days=settings.RUNNING_FOLD_LAG_DAYS)
    folded = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT running_fold_step(%s)", [target])
            (day,) = cursor.fetchone()
        if day is None:
            return folded
        folded += 1


def running_unfold() -> None:
    """Empty the rollup and forget its horizon, at once for every reader (they then read
    every day call by call, rightly); the next fold sums every day in again from the first
    stored fact. The repair for a rollup that drifted from its facts (triggers disabled
    during a bulk load, rows edited by hand)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT running_unfold()")
