"""The running rollup's fold: a UTC day moves from being read call by call to being summed
in the rollup (billing/invoicing/selectors/running.py), once it is over.

The rollup holds the days before its horizon (RunningHorizon), kept by the triggers of
migrations/0003_running_rollup.py as late facts of those days arrive. Calls as they
happen are of the days from the horizon on, which the triggers leave alone and the
readers read call by call: ingest pays nothing for the rollup. Here, a day at a time
(one transaction each), the day at the horizon is summed and the horizon moves past it,
until it is `settings.RUNNING_FOLD_LAG_DAYS` days before today (default 1: today and
yesterday stay read call by call, so that the day's stragglers cost ingest nothing either).

The fold takes the triggers' lock alone (they take it shared): it waits for the writers
that saw the old horizon to commit, so its sums see their facts, and writers that come
after wait for it, then see the new horizon and add their facts of the folded day
themselves. Facts are never counted twice or missed; ingest waits for the length of one
day's sums (about a second per million calls of the day).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction

# pg_advisory_xact_lock(FOLD_LOCK, 0), the triggers' constant (migrations/0003).
FOLD_LOCK = 0x666F6C64

# One day's facts summed into the rollup, as the triggers sum a statement's (calls typed
# by the outcome they name, of their own customer; premium users; outcomes by the day of
# their moment: failed when they failed, others when they succeeded).
_FOLD_SQL = """
INSERT INTO invoicing_runningcell AS c (customer_id, day, outcome_type, feature, tier,
    provider, model, calls, tokens, cost, unpriced_calls)
SELECT e.customer_id, %(day)s, coalesce(o.type, ''), e.feature, e.tier, e.provider,
       e.model, count(*), sum(e.input_tokens + e.output_tokens), coalesce(sum(e.cost), 0),
       count(*) FILTER (WHERE e.cost IS NULL)
FROM metering_usageevent e
LEFT JOIN outcomes_outcome o ON e.outcome_ref <> '' AND o.external_id = e.outcome_ref
     AND o.customer_id = e.customer_id
WHERE e."timestamp" >= %(start)s AND e."timestamp" < %(end)s
GROUP BY 1, 3, 4, 5, 6, 7
ON CONFLICT (customer_id, day, outcome_type, feature, tier, provider, model) DO UPDATE
SET calls = c.calls + EXCLUDED.calls, tokens = c.tokens + EXCLUDED.tokens,
    cost = c.cost + EXCLUDED.cost, unpriced_calls = c.unpriced_calls + EXCLUDED.unpriced_calls;

INSERT INTO invoicing_runningseat AS s (customer_id, day, end_user, calls, cost)
SELECT customer_id, %(day)s, end_user, count(*), coalesce(sum(cost), 0)
FROM metering_usageevent
WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s
  AND tier = 'premium' AND end_user <> ''
GROUP BY 1, 3
ON CONFLICT (customer_id, day, end_user) DO UPDATE
SET calls = s.calls + EXCLUDED.calls, cost = s.cost + EXCLUDED.cost;

INSERT INTO invoicing_runningoutcome AS r (customer_id, day, type, succeeded, failed,
    reversed)
SELECT customer_id, %(day)s, type, count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'reversed')
FROM outcomes_outcome
WHERE status IN ('succeeded', 'failed', 'reversed')
  AND CASE WHEN status = 'failed' THEN failed_at ELSE succeeded_at END >= %(start)s
  AND CASE WHEN status = 'failed' THEN failed_at ELSE succeeded_at END < %(end)s
GROUP BY 1, 3
ON CONFLICT (customer_id, day, type) DO UPDATE
SET succeeded = r.succeeded + EXCLUDED.succeeded, failed = r.failed + EXCLUDED.failed,
    reversed = r.reversed + EXCLUDED.reversed;
"""


# Without a horizon: the first day of any stored fact (or `target` without any), as the
# migration that made the rollup starts it.
_FIRST_DAY_SQL = """
INSERT INTO invoicing_runninghorizon (id, day)
SELECT 1, LEAST(
    %s::date,
    (SELECT min(("timestamp" AT TIME ZONE 'UTC')::date) FROM metering_usageevent),
    (SELECT min((coalesce(failed_at, succeeded_at) AT TIME ZONE 'UTC')::date)
     FROM outcomes_outcome))
RETURNING day
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def running_fold(*, now: datetime) -> int:
    """Fold each day before `now`'s UTC date less RUNNING_FOLD_LAG_DAYS into the rollup,
    one transaction a day. Safe to run twice or at once (the second waits, then finds the
    days folded). Returns how many days it folded."""
    target = now.astimezone(UTC).date() - timedelta(days=settings.RUNNING_FOLD_LAG_DAYS)
    folded = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [FOLD_LOCK])
            cursor.execute("SELECT day FROM invoicing_runninghorizon")
            row = cursor.fetchone()
            if row is None:  # nothing folded (the table was emptied): start from the facts
                cursor.execute(_FIRST_DAY_SQL, [target])
                row = cursor.fetchone()
            (day,) = row
            if day >= target:
                return folded
            cursor.execute(
                _FOLD_SQL,
                {"day": day, "start": _midnight(day), "end": _midnight(day + timedelta(days=1))},
            )
            cursor.execute(
                "UPDATE invoicing_runninghorizon SET day = %s", [day + timedelta(days=1)]
            )
        folded += 1


def running_unfold() -> None:
    """Empty the rollup and forget its horizon, at once for every reader (they then read
    every day call by call, rightly); the next fold sums every day in again from the first
    stored fact. The repair for a rollup that drifted from its facts (triggers disabled
    during a bulk load, rows edited by hand)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [FOLD_LOCK])
        cursor.execute("DELETE FROM invoicing_runninghorizon")
        cursor.execute(
            "TRUNCATE invoicing_runningcell, invoicing_runningseat, invoicing_runningoutcome"
        )
