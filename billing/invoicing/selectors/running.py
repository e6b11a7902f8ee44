"""The running rollup read back: what a customer window's calls and outcomes add up to
now, from the rollup's rows of its whole UTC days before the rollup's horizon, and the
facts of the rest (its partial first and last day, and the days from the horizon on:
today and yesterday, until the fold, billing/invoicing/folding.py, sums them in).

The rollup (billing/invoicing/models.py: RunningCell, RunningSeat, RunningOutcome) holds
the days that are over, kept by triggers in the transactions that write late facts
(migrations/0003_running_rollup.py), and each reading reads the horizon in its own
statement, so a reading here sees exactly what a scan of the facts would see at the same
moment: `tests/billing/test_running.py` holds the two equal through every kind of write
and fold. What reads here: every window nobody has closed yet, "as of now"
(Window.snapshot None): the invoice preview, an authorization, a premium seat's cost, the
live margins, the outcome counts of the margin report. A close reads the facts
themselves, as its snapshot sees them (billing/invoicing/watermark.py): an older snapshot
is not something a sum can be taken back to.

A month costs about 30 rows per cell instead of a row per call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from common.replicas import reading


class RunningWindow(NamedTuple):
    """A window as the rollup reads it: its whole UTC days [day_from, day_to), of which
    those before the rollup's horizon come from the rollup; the rest, and the partial
    days at either end, from the facts."""

    customer_id: int
    start: datetime
    end: datetime
    day_from: date
    day_to: date


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def running_window(customer_id: int, start: datetime, end: datetime) -> RunningWindow:
    return RunningWindow(customer_id, start, end, *_whole_days(start, end))


@functools.lru_cache(maxsize=1024)
def _whole_days(start: datetime, end: datetime) -> tuple[date, date]:
    """The UTC days wholly inside [start, end) (the same for every customer of a period:
    computed once); day_from >= day_to: none."""
    start_utc = start.astimezone(UTC)
    day_from = start_utc.date() + timedelta(
        days=0 if start_utc == _midnight(start_utc.date()) else 1
    )
    return day_from, end.astimezone(UTC).date()


# The rollup's horizon, read by the statement that reads the rollup (so that a fold
# committing meanwhile cannot make a day counted twice or not at all); -infinity without
# a row: nothing folded.
_HORIZON = "coalesce((SELECT day FROM invoicing_runninghorizon), '-infinity'::date)"


def _bounds_sql(start: str, end: str, day_from: str, day_to: str) -> str:
    """SELECT list of a window's bounds as the reading uses them: the rollup's days
    [day_from, day_to) (its whole days before the horizon), and the calls read one by
    one in [start, head_end) and [tail_start, end)."""
    folded_to = f"GREATEST({day_from}, LEAST({day_to}, {_HORIZON}))"
    midnight = "({}::timestamp AT TIME ZONE 'UTC')"
    return f"""{start} AS start, {end} AS "end", {day_from} AS day_from,
           {folded_to} AS day_to,
           CASE WHEN {folded_to} > {day_from} THEN {midnight.format(day_from)} ELSE {end}
           END AS head_end,
           CASE WHEN {folded_to} > {day_from} THEN {midnight.format(folded_to)} ELSE {end}
           END AS tail_start"""


# Bounds shared by every window of a query (`b`, one row), from parameters.
_SHARED_BOUNDS = f"""b AS MATERIALIZED (
    SELECT {
    _bounds_sql(
        "%(start)s::timestamptz", "%(end)s::timestamptz", "%(day_from)s::date", "%(day_to)s::date"
    )
}
)"""


@dataclass(frozen=True, slots=True)
class _Bounds:
    """How a query names its windows: the CTE `w` of (customer_id, key, ...) rows, and the
    bounds as SQL. Windows that share their bounds (a period's customers, a preview, an
    authorization) take them as parameters once, computed once (`b`): several times
    cheaper to send, and the partial days' calls are then one time range the scan can
    use; others as arrays, a row each."""

    shared: bool

    @property
    def windows(self) -> str:
        if self.shared:
            return f"""{_SHARED_BOUNDS}, w AS MATERIALIZED (
    SELECT * FROM unnest(%(customer_id)s::bigint[]) WITH ORDINALITY AS w(customer_id, key)
)"""  # noqa: S608 -- built from constants
        return f"""w AS MATERIALIZED (
    SELECT customer_id, key, {_bounds_sql("w.start", 'w."end"', "w.day_from", "w.day_to")}
    FROM unnest(%(customer_id)s::bigint[], %(start)s::timestamptz[], %(end)s::timestamptz[],
                %(day_from)s::date[], %(day_to)s::date[])
         WITH ORDINALITY AS w(customer_id, start, "end", day_from, day_to, key)
)"""  # noqa: S608 -- built from constants

    def __getattr__(self, name: str) -> str:
        # A bound by name: start, end, day_from, day_to, head_end, tail_start.
        if name not in ("start", "end", "day_from", "day_to", "head_end", "tail_start"):
            raise AttributeError(name)
        return f'(SELECT "{name}" FROM b)' if self.shared else f'w."{name}"'  # noqa: S608

    def params(self, windows: Sequence[RunningWindow]) -> dict[str, Any]:
        if self.shared:
            first = windows[0]
            return {name: getattr(first, name) for name in RunningWindow._fields[1:]} | {
                "customer_id": [window.customer_id for window in windows]
            }
        return {
            name: [getattr(window, name) for window in windows] for name in RunningWindow._fields
        }


_SHARED, _APART = _Bounds(shared=True), _Bounds(shared=False)


def _bounds(windows: Sequence[RunningWindow]) -> _Bounds:
    return _SHARED if len({window[1:] for window in windows}) == 1 else _APART


def _edge(b: _Bounds, columns: str) -> str:
    """The calls of each window's partial days: two time ranges (a window's own, through
    a lateral join, when the windows do not share them)."""

    def part(low: str, high: str) -> str:
        if b.shared:
            return f"""
    SELECT w.key, {columns} FROM metering_usageevent e JOIN w ON w.customer_id = e.customer_id
    WHERE e.customer_id = ANY(%(customer_id)s) AND e."timestamp" >= {low}
      AND e."timestamp" < {high}"""  # noqa: S608 -- built from constants
        return f"""
    SELECT w.key, e.* FROM w CROSS JOIN LATERAL (
        SELECT {columns} FROM metering_usageevent e WHERE e.customer_id = w.customer_id
          AND e."timestamp" >= {low} AND e."timestamp" < {high}) AS e"""  # noqa: S608

    return part(b.start, b.head_end) + "\n    UNION ALL" + part(b.tail_start, b.end)


def _usage_sql(b: _Bounds, *, detail: bool) -> str:
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
    days = f"day >= {b.day_from} AND day < {b.day_to}"
    return f"""
WITH {b.windows}, edge AS MATERIALIZED ({
        _edge(
            b,
            "e.customer_id, e.outcome_ref, e.feature, e.tier, e.provider, e.model, "
            "e.end_user, e.input_tokens + e.output_tokens AS tokens, e.cost",
        )
    }
), cells AS (
    SELECT w.key, c.outcome_type, c.feature, c.tier, c.provider, c.model, c.calls, c.tokens,
           c.cost, c.unpriced_calls AS unpriced
    FROM w JOIN invoicing_runningcell c ON c.customer_id = w.customer_id AND c.{days}
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
        ON s.customer_id = w.customer_id AND s.{days} AND s.calls > 0
    UNION ALL
    SELECT key, end_user FROM edge WHERE tier = 'premium' AND end_user <> ''
) AS seats
GROUP BY 1
"""  # noqa: S608 -- built from constants


_USAGE_SQLS = {
    (b.shared, detail): _usage_sql(b, detail=detail)
    for b in (_SHARED, _APART)
    for detail in (True, False)
}


def running_usage(*, windows: Sequence[RunningWindow], detail: bool) -> list[tuple[Any, ...]]:
    """The rows of each window's cells and active seats as of now; a row's key is the
    window's position in `windows`, from 1."""
    b = _bounds(windows)
    with reading().cursor() as cursor:
        cursor.execute(_USAGE_SQLS[(b.shared, detail)], b.params(windows))
        return cursor.fetchall()


# Each window's outcomes per type: succeeded (still), failed, and succeeded since reversed,
# each counted in the window holding its moment (failed: when it failed; else when it
# succeeded).
def _outcomes_sql(b: _Bounds) -> str:
    at = "CASE WHEN o.status = 'failed' THEN o.failed_at ELSE o.succeeded_at END"
    return f"""
WITH {b.windows}
SELECT key, type, sum(succeeded), sum(failed), sum(reversed)
FROM (
    SELECT w.key, r.type, r.succeeded, r.failed, r.reversed
    FROM w JOIN invoicing_runningoutcome r ON r.customer_id = w.customer_id
         AND r.day >= {b.day_from} AND r.day < {b.day_to}
    UNION ALL
    SELECT w.key, o.type, (o.status = 'succeeded')::int, (o.status = 'failed')::int,
           (o.status = 'reversed')::int
    FROM w JOIN outcomes_outcome o ON o.customer_id = w.customer_id
    WHERE o.status IN ('succeeded', 'failed', 'reversed')
      AND (({at}) >= {b.start} AND ({at}) < {b.head_end}
           OR ({at}) >= {b.tail_start} AND ({at}) < {b.end})
) AS counts
GROUP BY 1, 2
HAVING sum(succeeded) <> 0 OR sum(failed) <> 0 OR sum(reversed) <> 0
"""  # noqa: S608 -- built from constants


# Each window's outcomes per type: succeeded (still), failed, and succeeded since reversed,
# each counted in the window holding its moment (failed: when it failed; else when it
# succeeded).
_OUTCOMES_SQLS = {b.shared: _outcomes_sql(b) for b in (_SHARED, _APART)}


def running_outcomes(*, windows: Sequence[RunningWindow]) -> list[tuple[int, str, int, int, int]]:
    """(window key from 1, type, succeeded, failed, reversed) as of now."""
    b = _bounds(windows)
    with reading().cursor() as cursor:
        cursor.execute(_OUTCOMES_SQLS[b.shared], b.params(windows))
        return [
            (key, type_, int(succeeded), int(failed), int(reversed_))
            for key, type_, succeeded, failed, reversed_ in cursor.fetchall()
        ]


# One premium user's priced calls in a window (what a fair-use cap limits).
_SEAT_COST_SQL = f"""
WITH {_SHARED.windows}
SELECT coalesce(sum(cost), 0) FROM (
    SELECT s.cost FROM invoicing_runningseat s
    WHERE s.customer_id = (%(customer_id)s::bigint[])[1] AND s.end_user = %(user)s
      AND s.day >= {_SHARED.day_from} AND s.day < {_SHARED.day_to}
    UNION ALL
    SELECT e.cost FROM metering_usageevent e
    WHERE e.customer_id = (%(customer_id)s::bigint[])[1] AND e.tier = 'premium'
      AND e.end_user = %(user)s
      AND (e."timestamp" >= {_SHARED.start} AND e."timestamp" < {_SHARED.head_end}
           OR e."timestamp" >= {_SHARED.tail_start} AND e."timestamp" < {_SHARED.end})
) AS costs
"""  # noqa: S608 -- built from constants


def running_seat_cost(*, customer_id: int, user: str, start: datetime, end: datetime) -> Decimal:
    """USD: what the customer's premium user `user` has cost in [start, end) so far
    (priced calls; an unpriced call costs nothing known)."""
    window = running_window(customer_id, start, end)
    with reading().cursor() as cursor:
        cursor.execute(_SEAT_COST_SQL, _SHARED.params([window]) | {"user": user})
        (cost,) = cursor.fetchone()
    return Decimal(cost)


# Every premium seat's priced calls in one window, all customers, per plan (the premium
# break-even report, and the fair-use caps made from it): each seat's cost, sorted, as one
# array per plan, so that seventy thousand seats cross to Python as a few arrays of
# numbers rather than as rows of customer, user and cost.
_SEAT_COSTS_SQL = f"""
WITH {_SHARED_BOUNDS},
plan_of AS (
    SELECT * FROM unnest(%(customers)s::bigint[], %(plans)s::bigint[]) AS p(customer_id, plan_id)
),
seats AS (
    SELECT customer_id, end_user, coalesce(sum(cost), 0) AS cost FROM (
        SELECT s.customer_id, s.end_user, s.calls, s.cost FROM invoicing_runningseat s
        WHERE s.day >= {_SHARED.day_from} AND s.day < {_SHARED.day_to}
        UNION ALL
        SELECT e.customer_id, e.end_user, 1, e.cost FROM metering_usageevent e
        WHERE e.tier = 'premium' AND e.end_user <> ''
          AND (e."timestamp" >= {_SHARED.start} AND e."timestamp" < {_SHARED.head_end}
               OR e."timestamp" >= {_SHARED.tail_start} AND e."timestamp" < {_SHARED.end})
    ) AS calls
    GROUP BY 1, 2
    HAVING sum(calls) > 0
)
SELECT p.plan_id, array_agg(seats.cost ORDER BY seats.cost)
FROM seats JOIN plan_of p USING (customer_id)
GROUP BY 1
"""  # noqa: S608 -- built from constants


def running_seat_costs(
    *, start: datetime, end: datetime, plans: dict[int, int]
) -> dict[int, list[Decimal]]:
    """Plan id -> the USD cost of each premium seat with calls in [start, end) as of now
    (what its priced calls cost), ascending, of the customers `plans` names (customer id
    -> plan id); a plan without seats is absent."""
    window = running_window(0, start, end)
    customers = list(plans)
    params = {"customers": customers, "plans": [plans[c] for c in customers]}
    with reading().cursor() as cursor:
        cursor.execute(_SEAT_COSTS_SQL, _SHARED.params([window]) | params)
        return dict(cursor.fetchall())  # the costs Decimals already (numeric[])


# Every customer's calls of a window by UTC day, model and the type of the outcome each
# names (the dashboard's cost by model and cost per success, day by day).
_DAILY_COSTS_SQL = f"""
WITH {_SHARED_BOUNDS}
SELECT day, provider, model, outcome_type, sum(calls), sum(cost) FROM (
    SELECT c.day, c.provider, c.model, c.outcome_type, c.calls, c.cost
    FROM invoicing_runningcell c
    WHERE c.day >= {_SHARED.day_from} AND c.day < {_SHARED.day_to}
    UNION ALL
    SELECT (e."timestamp" AT TIME ZONE 'UTC')::date, e.provider, e.model, coalesce(o.type, ''),
           1, coalesce(e.cost, 0)
    FROM metering_usageevent e LEFT JOIN outcomes_outcome o ON e.outcome_ref <> ''
         AND o.external_id = e.outcome_ref AND o.customer_id = e.customer_id
    WHERE e."timestamp" >= {_SHARED.start} AND e."timestamp" < {_SHARED.head_end}
       OR e."timestamp" >= {_SHARED.tail_start} AND e."timestamp" < {_SHARED.end}
) AS calls
GROUP BY 1, 2, 3, 4
HAVING sum(calls) <> 0
ORDER BY 1, 2, 3, 4
"""  # noqa: S608 -- built from constants


def running_daily_costs(
    *, start: datetime, end: datetime
) -> list[tuple[date, str, str, str, int, Decimal]]:
    """(UTC day, provider, model, outcome type, calls, USD) of every customer's calls in
    [start, end) as of now; outcome type "": the call names no outcome."""
    window = running_window(0, start, end)
    with reading().cursor() as cursor:
        cursor.execute(_DAILY_COSTS_SQL, _SHARED.params([window]))
        return [
            (day, provider, model, outcome_type, int(calls), Decimal(cost))
            for day, provider, model, outcome_type, calls, cost in cursor.fetchall()
        ]


# Every customer's successes of a window by UTC day (of the success) and outcome type.
_DAILY_SUCCESSES_SQL = f"""
WITH {_SHARED_BOUNDS}
SELECT day, type, sum(succeeded) FROM (
    SELECT r.day, r.type, r.succeeded FROM invoicing_runningoutcome r
    WHERE r.day >= {_SHARED.day_from} AND r.day < {_SHARED.day_to}
    UNION ALL
    SELECT (o.succeeded_at AT TIME ZONE 'UTC')::date, o.type, 1 FROM outcomes_outcome o
    WHERE o.status = 'succeeded'
      AND (o.succeeded_at >= {_SHARED.start} AND o.succeeded_at < {_SHARED.head_end}
           OR o.succeeded_at >= {_SHARED.tail_start} AND o.succeeded_at < {_SHARED.end})
) AS successes
GROUP BY 1, 2
HAVING sum(succeeded) <> 0
ORDER BY 1, 2
"""  # noqa: S608 -- built from constants


def running_daily_successes(*, start: datetime, end: datetime) -> list[tuple[date, str, int]]:
    """(UTC day, outcome type, outcomes that succeeded that day and still stand) of every
    customer in [start, end) as of now."""
    window = running_window(0, start, end)
    with reading().cursor() as cursor:
        cursor.execute(_DAILY_SUCCESSES_SQL, _SHARED.params([window]))
        return [(day, type_, int(succeeded)) for day, type_, succeeded in cursor.fetchall()]
