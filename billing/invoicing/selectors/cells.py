"""The calls of billing periods in one scan, as a snapshot sees them: grouped into cells
(outcome type × feature × tier × model) with their cost, and the distinct premium users
(active seats). What a close rates, what the margin report spreads revenue over
(billing/analytics/selectors/margins.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from billing.invoicing.selectors.running import running_usage, running_window
from billing.invoicing.watermark import call_priced, call_recorded
from common.replicas import reading

ZERO = Decimal(0)


class CostStatus(StrEnum):
    """How much of some calls' inference cost is known: a call without a price has none,
    which is never taken as $0."""

    COMPLETE = "complete"  # every call priced
    INCOMPLETE = "incomplete"  # some calls unpriced: the cost shown is a lower bound
    UNKNOWN = "unknown"  # every call unpriced: no cost, no margin


def cost_status(*, calls: int, unpriced_calls: int) -> CostStatus:
    # `unpriced_calls` is below zero where late costs of calls counted (unpriced) in an
    # earlier period arrive (cells_difference).
    if calls > 0 and unpriced_calls >= calls:
        return CostStatus.UNKNOWN
    return CostStatus.INCOMPLETE if unpriced_calls > 0 else CostStatus.COMPLETE


class Window(NamedTuple):
    """One customer's [start, end) as some moment sees it: a close's snapshot (what that
    invoice bills), or None for now (a preview, a live margin)."""

    customer_id: int
    start: datetime
    end: datetime
    snapshot: str | None = None


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
    # The free credits its revenue is net of (invoice currency): a discount, shown apart.
    discount: Decimal = ZERO

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.outcome_type, self.feature, self.tier, self.provider, self.model)

    def unspread(self) -> Cell:
        """A copy with no revenue. (dataclasses.replace does the same several times
        slower, and a margin report copies every cell of every open period.)"""
        return Cell(
            self.outcome_type, self.feature, self.tier, self.provider, self.model,
            self.calls, self.tokens, self.cost, self.unpriced_calls,
        )  # fmt: skip


@dataclass(slots=True)
class PeriodUsage:
    """One customer window's calls: its cells and its active premium seats."""

    cells: list[Cell] = field(default_factory=list)
    active_seats: int = 0  # distinct end users with `tier: premium` calls
    detailed: bool = False  # cells by outcome type, feature, tier and model (else feature)

    @property
    def cost_by_call(self) -> dict[tuple[str, str, str, str], Decimal]:
        """Priced cost per feature, tier, provider and model (detailed cells only): for
        markups by a property of the call."""
        costs: dict[tuple[str, str, str, str], Decimal] = {}
        if not self.detailed:
            return costs
        for cell in self.cells:
            key = (cell.feature, cell.tier, cell.provider, cell.model)
            costs[key] = costs.get(key, ZERO) + cell.cost
        return costs

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


@dataclass(frozen=True, slots=True)
class WindowsSql:
    """How a query names its windows, for facts aliased `fact`: the join that gives each
    fact its window, the window's `key` in result rows, the test that the fact's moment
    lies in it, and the snapshot to see it with. Windows that share their start, end and
    snapshot (a close's, a preview's) need no join at all: a fact's customer is its window
    (the query's overall range is the window); several times cheaper to send and to run
    than a row per window, which windows of several periods or snapshots need (late
    usage, the margin breakdown)."""

    shared: bool

    def join(self, fact: str) -> str:
        if self.shared:
            return ""
        return f"""JOIN unnest(%(customers)s::bigint[], %(starts)s::timestamptz[],
                        %(ends)s::timestamptz[], %(snapshots)s::text[]::pg_snapshot[])
                 WITH ORDINALITY AS w(customer_id, start_at, end_at, snapshot, key)
                 ON w.customer_id = {fact}.customer_id"""

    def key(self, fact: str) -> str:
        return f"{fact}.customer_id" if self.shared else "w.key"

    def within(self, column: str) -> str:
        return "TRUE" if self.shared else f"{column} >= w.start_at AND {column} < w.end_at"

    @property
    def snapshot(self) -> str:
        return "%(snapshot)s::pg_snapshot" if self.shared else "w.snapshot"


WINDOWS = {shared: WindowsSql(shared) for shared in (True, False)}


@dataclass(frozen=True, slots=True)
class WindowSet:
    """Windows (each once) as a query takes them: `sql` names them, `params` lists them,
    `of(key)` is the window of a result row's key."""

    windows: list[Window]
    sql: WindowsSql
    params: dict[str, Any]
    by_customer: dict[int, Window]  # shared windows: one per customer

    def of(self, key: int) -> Window:
        if self.sql.shared:
            return self.by_customer[key]
        return self.windows[key - 1]  # WITH ORDINALITY counts from 1


def window_set(windows: Sequence[Window]) -> WindowSet:
    ordered = list(dict.fromkeys(windows))
    shared = len({(w.start, w.end, w.snapshot) for w in ordered}) == 1
    params: dict[str, Any] = {
        "customers": [w.customer_id for w in ordered],
        "first_start": min(w.start for w in ordered),
        "last_end": max(w.end for w in ordered),
    }
    if shared:
        params["snapshot"] = ordered[0].snapshot
    else:
        params |= {
            "starts": [w.start for w in ordered],
            "ends": [w.end for w in ordered],
            "snapshots": [w.snapshot for w in ordered],
        }
    by_customer = {w.customer_id: w for w in ordered} if shared else {}
    return WindowSet(ordered, WINDOWS[shared], params, by_customer)


def _usage_sql(windows: WindowsSql, *, keys: str, join: str) -> str:
    """One scan of each window's calls as its snapshot sees them (billing/invoicing/watermark.py):
    grouped with the premium user first (a small result), then summed into cells and
    counted into distinct premium users; the rows with a NULL outcome type carry the
    seats. A call the snapshot sees unpriced (unpriced then, or priced after it) counts as
    unpriced. `keys` are the cell's columns: in detail (the outcome's type, joined by id,
    feature, tier, provider, model) or by feature only, which is what rating needs and
    half the work."""
    return f"""
WITH grouped AS MATERIALIZED (
    SELECT {windows.key("e")} AS key, {keys},
           CASE WHEN e.tier = 'premium' AND e.end_user <> '' THEN e.end_user END
               AS premium_user,
           count(*) AS calls, sum(e.input_tokens + e.output_tokens) AS tokens,
           coalesce(sum(e.cost) FILTER (WHERE {call_priced(windows.snapshot)}), 0) AS cost,
           count(*) FILTER (WHERE NOT {call_priced(windows.snapshot)}) AS unpriced
    FROM metering_usageevent e
    {windows.join("e")}
    {join}
    -- The windows' customers and overall range too, so that the scan can use them.
    WHERE e.customer_id = ANY(%(customers)s) AND e."timestamp" >= %(first_start)s
      AND e."timestamp" < %(last_end)s AND {windows.within('e."timestamp"')}
      AND {call_recorded(windows.snapshot)}
    GROUP BY 1, 2, 3, 4, 5, 6, 7
)
SELECT key, outcome_type, feature, tier, provider, model,
       sum(calls), sum(tokens), sum(cost), sum(unpriced), 0
FROM grouped GROUP BY 1, 2, 3, 4, 5, 6
UNION ALL
SELECT key, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, count(DISTINCT premium_user)
FROM grouped WHERE premium_user IS NOT NULL GROUP BY 1
"""  # noqa: S608 -- built from constants


# (detail, shared window) -> the query
_USAGE_SQLS = {
    (detail, shared): _usage_sql(
        WINDOWS[shared],
        keys="coalesce(o.type, '') AS outcome_type, e.feature, e.tier, e.provider, e.model"
        if detail
        else "'' AS outcome_type, e.feature, '' AS tier, '' AS provider, '' AS model",
        join="LEFT JOIN outcomes_outcome o ON e.outcome_ref <> '' AND o.external_id = e.outcome_ref"
        " AND o.customer_id = e.customer_id"
        if detail
        else "",
    )
    for detail in (True, False)
    for shared in (True, False)
}


def windows_usage(
    *, windows: Sequence[Window], detail: bool = True, running: bool = True
) -> dict[Window, PeriodUsage]:
    """Each window's calls as its snapshot sees them: one query. With `detail` false the
    cells are per feature only (enough to rate a period). Windows as of now are read from
    the running rollup (billing/invoicing/selectors/running.py) unless `running` is false
    (then from the calls, as a snapshot's are: what the rollup is checked against). Cells
    come in key order."""
    usage = {window: PeriodUsage(detailed=detail) for window in windows}
    if not windows:
        return usage
    if running and all(window.snapshot is None for window in windows):
        ordered = list(dict.fromkeys(windows))
        rows = running_usage(
            windows=[running_window(w.customer_id, w.start, w.end) for w in ordered],
            detail=detail,
        )
        window_of = lambda key: ordered[key - 1]  # noqa: E731 -- WITH ORDINALITY counts from 1
    else:
        found = window_set(windows)
        with reading().cursor() as cursor:
            cursor.execute(_USAGE_SQLS[(detail, found.sql.shared)], found.params)
            rows = cursor.fetchall()
        window_of = found.of
    for key, outcome_type, *cell_key, calls, tokens, cost, unpriced, seats in rows:
        period = usage[window_of(key)]
        if outcome_type is None:
            period.active_seats = seats
            continue
        period.cells.append(
            Cell(
                outcome_type,
                *cell_key,
                calls=int(calls),
                tokens=int(tokens),
                cost=cost,
                unpriced_calls=int(unpriced),
            )
        )
    for period in usage.values():
        period.cells.sort(key=lambda cell: cell.key)
    return usage


def cells_difference(after: list[Cell], before: list[Cell]) -> list[Cell]:
    """What changed between two readings of one period's calls (a close's, and the one
    before): per cell, the calls, tokens and cost that arrived and the unpriced calls'
    change (negative when calls seen unpriced before were priced since). Cells with no
    change are left out."""
    changes = {cell.key: replace(cell, revenue=ZERO) for cell in after}
    for cell in before:
        change = changes.setdefault(
            cell.key, replace(cell, calls=0, tokens=0, cost=ZERO, unpriced_calls=0, revenue=ZERO)
        )
        change.calls -= cell.calls
        change.tokens -= cell.tokens
        change.cost -= cell.cost
        change.unpriced_calls -= cell.unpriced_calls
    return [
        cell
        for cell in changes.values()
        if cell.calls or cell.tokens or cell.cost or cell.unpriced_calls
    ]
