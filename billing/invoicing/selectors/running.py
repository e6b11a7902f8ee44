"""The running rollup read back: what a customer window's calls and outcomes add up to
now, from the rollup's rows of its whole UTC days and the facts of its partial days.

The rollup (billing/invoicing/models.py, RunningCell, RunningSeat, RunningOutcome) is kept
by triggers in the transactions that write the facts (migrations/0003_running_rollup.py),
so a reading here sees exactly what a scan of the facts would see at the same moment:
`tests/billing/test_running.py` holds the two equal through every kind of write. What
reads here: every window nobody has closed yet, "as of now" (Window.snapshot None): the
invoice preview, an authorization, the live margins, the outcome counts of the margin
report. A close reads the facts themselves, as its snapshot sees them
(billing/invoicing/watermark.py): an older snapshot is not something a sum can be taken
back to.

A window of a month costs about 30 rows per cell instead of a row per call; its first and
last day, when the window does not start or end at midnight UTC (a period in another
timezone, a report up to now), are read call by call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from common.replicas import reading


class RunningWindow(NamedTuple):
    """A window as the rollup reads it: its whole UTC days [day_from, day_to) from the
    rollup, [start, head_end) and [tail_start, end) from the facts."""

    customer_id: int
    start: datetime
    end: datetime
    day_from: date
    day_to: date
    head_end: datetime
    tail_start: datetime


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def running_window(customer_id: int, start: datetime, end: datetime) -> RunningWindow:
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    day_from = start_utc.date() + timedelta(
        days=0 if start_utc == _midnight(start_utc.date()) else 1
    )
    day_to = end_utc.date()
    if day_from >= day_to:  # no whole day: every call of the window is read
        return RunningWindow(customer_id, start, end, day_from, day_from, end, end)
    return RunningWindow(
        customer_id, start, end, day_from, day_to, _midnight(day_from), _midnight(day_to)
    )


def _params(windows: Sequence[RunningWindow]) -> dict[str, Any]:
    return {name: [getattr(window, name) for window in windows] for name in RunningWindow._fields}


_WINDOWS = """
w AS MATERIALIZED (
    SELECT * FROM unnest(%(customer_id)s::bigint[], %(start)s::timestamptz[],
                         %(end)s::timestamptz[], %(day_from)s::date[], %(day_to)s::date[],
                         %(head_end)s::timestamptz[], %(tail_start)s::timestamptz[])
    WITH ORDINALITY AS w(customer_id, start_at, end_at, day_from, day_to, head_end,
                         tail_start, key)
)"""


def _edge(columns: str) -> str:
    """The calls of each window's partial days (two index ranges per window)."""
    return f"""
    SELECT w.key, {columns} FROM w JOIN metering_usageevent e ON e.customer_id = w.customer_id
        AND e."timestamp" >= w.start_at AND e."timestamp" < w.head_end
    UNION ALL
    SELECT w.key, {columns} FROM w JOIN metering_usageevent e ON e.customer_id = w.customer_id
        AND e."timestamp" >= w.tail_start AND e."timestamp" < w.end_at"""  # noqa: S608 -- constants


def _usage_sql(*, detail: bool) -> str:
    """Cells and active seats per window, in the rows billing/invoicing/selectors/cells.py's
    scan returns: (key, outcome type, feature, tier, provider, model, calls, tokens, cost,
    unpriced calls, 0), and (key, NULL × 5, 0, 0, 0, 0, active seats)."""
    keys = "outcome_type, feature, tier, provider, model" if detail else "'', feature, '', '', ''"
    # The outcome a call names, of its own customer, gives its cell a type.
    outcome_type, outcome_join = (
        (
            "coalesce(o.type, '')",
            "LEFT JOIN outcomes_outcome o ON e.outcome_ref <> ''"
            " AND o.external_id = e.outcome_ref AND o.customer_id = e.customer_id",
        )
        if detail
        else ("''", "")
    )
    return f"""
WITH {_WINDOWS}, edge AS MATERIALIZED ({
        _edge(
            "e.customer_id, e.outcome_ref, e.feature, e.tier, e.provider, e.model, "
            "e.end_user, e.input_tokens + e.output_tokens AS tokens, e.cost"
        )
    }
), cells AS (
    SELECT w.key, c.outcome_type, c.feature, c.tier, c.provider, c.model, c.calls, c.tokens,
           c.cost, c.unpriced_calls AS unpriced
    FROM w JOIN invoicing_runningcell c ON c.customer_id = w.customer_id
         AND c.day >= w.day_from AND c.day < w.day_to
    UNION ALL
    SELECT e.key, {outcome_type}, e.feature, e.tier, e.provider, e.model, 1, e.tokens,
           coalesce(e.cost, 0), (e.cost IS NULL)::int
    FROM edge e {outcome_join}
)
SELECT key, {keys}, sum(calls), sum(tokens), sum(cost), sum(unpriced), 0
FROM cells GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(calls) <> 0
UNION ALL
SELECT key, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, count(DISTINCT end_user)
FROM (
    SELECT w.key, s.end_user FROM w JOIN invoicing_runningseat s
        ON s.customer_id = w.customer_id AND s.day >= w.day_from AND s.day < w.day_to
        AND s.calls > 0
    UNION ALL
    SELECT key, end_user FROM edge WHERE tier = 'premium' AND end_user <> ''
) AS seats
GROUP BY 1
"""  # noqa: S608 -- built from constants


_USAGE_SQLS = {detail: _usage_sql(detail=detail) for detail in (True, False)}


def running_usage(*, windows: Sequence[RunningWindow], detail: bool) -> list[tuple[Any, ...]]:
    """The rows of each window's cells and active seats as of now; a row's key is the
    window's position in `windows`, from 1."""
    with reading().cursor() as cursor:
        cursor.execute(_USAGE_SQLS[detail], _params(windows))
        return cursor.fetchall()


# Each window's outcomes per type: succeeded (still), failed, and succeeded since reversed,
# each counted in the window holding its moment (failed: when it failed; else when it
# succeeded).
_OUTCOMES_SQL = f"""
WITH {_WINDOWS}
SELECT key, type, sum(succeeded), sum(failed), sum(reversed)
FROM (
    SELECT w.key, r.type, r.succeeded, r.failed, r.reversed
    FROM w JOIN invoicing_runningoutcome r ON r.customer_id = w.customer_id
         AND r.day >= w.day_from AND r.day < w.day_to
    UNION ALL
    SELECT w.key, o.type, (o.status = 'succeeded')::int, (o.status = 'failed')::int,
           (o.status = 'reversed')::int
    FROM w JOIN outcomes_outcome o ON o.customer_id = w.customer_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN o.status = 'failed' THEN o.failed_at ELSE o.succeeded_at END AS at
    ) AS moment
    WHERE o.status IN ('succeeded', 'failed', 'reversed')
      AND ((moment.at >= w.start_at AND moment.at < w.head_end)
           OR (moment.at >= w.tail_start AND moment.at < w.end_at))
) AS counts
GROUP BY 1, 2
HAVING sum(succeeded) <> 0 OR sum(failed) <> 0 OR sum(reversed) <> 0
"""  # noqa: S608 -- built from constants


def running_outcomes(*, windows: Sequence[RunningWindow]) -> list[tuple[int, str, int, int, int]]:
    """(window key from 1, type, succeeded, failed, reversed) as of now."""
    with reading().cursor() as cursor:
        cursor.execute(_OUTCOMES_SQL, _params(windows))
        return [
            (key, type_, int(succeeded), int(failed), int(reversed_))
            for key, type_, succeeded, failed, reversed_ in cursor.fetchall()
        ]
