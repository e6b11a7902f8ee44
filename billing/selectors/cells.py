"""The calls of billing periods in one scan: grouped into cells (outcome type × feature ×
tier × model) with their cost, and the distinct premium users (active seats). What a
close rates, what the margin report spreads revenue over (billing/selectors/margins.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection

ZERO = Decimal(0)
Window = tuple[int, datetime, datetime]  # customer id, start, end


@dataclass(slots=True)
class Cell:
    """The calls of one period with one outcome type ("" without), feature, tier and
    model, and the revenue (invoice currency) spread over them."""

    outcome_type: str
    feature: str
    tier: str
    provider: str
    model: str
    calls: int = 0
    tokens: int = 0
    cost: Decimal = ZERO  # USD, priced calls
    unpriced_calls: int = 0
    revenue: Decimal = ZERO

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.outcome_type, self.feature, self.tier, self.provider, self.model)


@dataclass(slots=True)
class PeriodUsage:
    """One customer window's calls: its cells and its active premium seats."""

    cells: list[Cell] = field(default_factory=list)
    active_seats: int = 0  # distinct end users with `tier: premium` calls

    @property
    def calls(self) -> int:
        return sum(cell.calls for cell in self.cells)

    @property
    def cost(self) -> Decimal:
        return sum((cell.cost for cell in self.cells), ZERO)

    @property
    def unpriced_calls(self) -> int:
        return sum(cell.unpriced_calls for cell in self.cells)

    @property
    def cost_by_feature(self) -> dict[str, Decimal]:
        """Priced cost per feature, for token pass-through."""
        costs: dict[str, Decimal] = {}
        for cell in self.cells:
            costs[cell.feature] = costs.get(cell.feature, ZERO) + cell.cost
        return costs


# One scan of each window's calls stored by `as_of`: grouped with the premium user first
# (a small result), then summed into cells and counted into distinct premium users; the
# rows with a NULL outcome type carry the seats. {keys} are the cell's columns: in detail
# (the outcome's type, joined by id, feature, tier, provider, model) or by feature only,
# which is what rating needs and half the work.
_USAGE_SQL = """
WITH grouped AS MATERIALIZED (
    SELECT w.customer_id, w.start_at, {keys},
           CASE WHEN e.tier = 'premium' AND e.end_user <> '' THEN e.end_user END
               AS premium_user,
           count(*) AS calls, sum(e.input_tokens + e.output_tokens) AS tokens,
           coalesce(sum(e.cost), 0) AS cost,
           count(*) FILTER (WHERE e.cost_source = 'unpriced') AS unpriced
    FROM metering_usageevent e
    JOIN unnest(%(customers)s::bigint[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
         AS w(customer_id, start_at, end_at) ON w.customer_id = e.customer_id
    {join}
    -- The windows' customers and overall range too, so that the scan can use them.
    WHERE e.customer_id = ANY(%(customers)s) AND e."timestamp" >= %(first_start)s
      AND e."timestamp" < %(last_end)s
      AND e."timestamp" >= w.start_at AND e."timestamp" < w.end_at
      AND e.received_at <= %(as_of)s
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
)
SELECT customer_id, start_at, outcome_type, feature, tier, provider, model,
       sum(calls), sum(tokens), sum(cost), sum(unpriced), 0
FROM grouped GROUP BY 1, 2, 3, 4, 5, 6, 7
UNION ALL
SELECT customer_id, start_at, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0,
       count(DISTINCT premium_user)
FROM grouped WHERE premium_user IS NOT NULL GROUP BY 1, 2
"""
_DETAILED_SQL = _USAGE_SQL.format(
    keys="coalesce(o.type, '') AS outcome_type, e.feature, e.tier, e.provider, e.model",
    join="LEFT JOIN outcomes_outcome o ON e.outcome_ref <> '' AND o.external_id = e.outcome_ref",
)
_BY_FEATURE_SQL = _USAGE_SQL.format(
    keys="'' AS outcome_type, e.feature, '' AS tier, '' AS provider, '' AS model", join=""
)


def windows_usage(
    *, windows: Sequence[Window], as_of: datetime, detail: bool = True
) -> dict[tuple[int, datetime], PeriodUsage]:
    """(customer id, start) -> the calls of its window stored by `as_of`: one query. With
    `detail` false the cells are per feature only (enough to rate a period)."""
    usage = {(w[0], w[1]): PeriodUsage() for w in windows}
    if not windows:
        return usage
    params = {
        "customers": [w[0] for w in windows],
        "starts": [w[1] for w in windows],
        "ends": [w[2] for w in windows],
        "first_start": min(w[1] for w in windows),
        "last_end": max(w[2] for w in windows),
        "as_of": as_of,
    }
    with connection.cursor() as cursor:
        cursor.execute(_DETAILED_SQL if detail else _BY_FEATURE_SQL, params)
        for (
            customer_id,
            start,
            outcome_type,
            *key,
            calls,
            tokens,
            cost,
            unpriced,
            seats,
        ) in cursor.fetchall():
            period = usage[(customer_id, start)]
            if outcome_type is None:
                period.active_seats = seats
                continue
            period.cells.append(
                Cell(
                    outcome_type,
                    *key,
                    calls=int(calls),
                    tokens=int(tokens),
                    cost=cost,
                    unpriced_calls=int(unpriced),
                )
            )
    return usage
