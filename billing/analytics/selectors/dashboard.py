"""What the admin dashboard draws: plain data for its charts, from the same reports the
API answers (margins, premium break-even, savings) and two day-by-day aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.analytics.selectors.margins import (
    INCLUDED_KEY,
    WATERFALL,
    MarginFilters,
    MarginReport,
    MarginRow,
    margins_report,
)
from billing.analytics.selectors.premium import PremiumBreakEven, premium_break_even
from billing.analytics.selectors.savings import caching_levers
from common.replicas import reading

TOP = 5
HISTOGRAM_BINS = 8

_COST_BY_MODEL_SQL = """
SELECT date_trunc('day', "timestamp" AT TIME ZONE 'UTC')::date AS day,
       provider || ':' || model, coalesce(sum(cost), 0)
FROM metering_usageevent
WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s
GROUP BY 1, 2 ORDER BY 1, 2
"""
# Per day and outcome type: the cost of the calls made that day for outcomes of the type,
# and the successes of that day.
_COST_PER_SUCCESS_SQL = """
WITH costs AS (
    SELECT date_trunc('day', e."timestamp" AT TIME ZONE 'UTC')::date AS day, o.type,
           sum(e.cost) AS cost
    FROM metering_usageevent e JOIN outcomes_outcome o ON o.external_id = e.outcome_ref
        AND o.customer_id = e.customer_id
    WHERE e."timestamp" >= %(start)s AND e."timestamp" < %(end)s AND e.outcome_ref <> ''
    GROUP BY 1, 2
), successes AS (
    SELECT date_trunc('day', succeeded_at AT TIME ZONE 'UTC')::date AS day, type,
           count(*) AS succeeded
    FROM outcomes_outcome
    WHERE status = 'succeeded' AND succeeded_at >= %(start)s AND succeeded_at < %(end)s
    GROUP BY 1, 2
)
SELECT day, type, coalesce(c.cost, 0), s.succeeded
FROM successes s LEFT JOIN costs c USING (day, type)
ORDER BY 1, 2
"""


def _series(rows: list[tuple[Any, str, Decimal]]) -> dict[str, Any]:
    """(day, name, value) rows as chart data: the days, and one series per name."""
    days = sorted({row[0] for row in rows})
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[str | None]] = {}
    for day, name, value in rows:
        series.setdefault(name, [None] * len(days))[index[day]] = str(value)
    return {
        "labels": [day.isoformat() for day in days],
        "series": [{"name": name, "values": values} for name, values in sorted(series.items())],
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _histogram(report: PremiumBreakEven) -> dict[str, Any]:
    """Seats per cost bin, bins a quarter of the fee wide (USD), up to the costliest."""
    fee = report.seat_fee_usd
    width = fee / 4 if fee else (report.max or Decimal(1)) / HISTOGRAM_BINS
    top = max(report.max or Decimal(0), fee or Decimal(0))
    bins = max(1, min(int(top / width) + 1, 40))
    counts = [0] * bins
    for cost in report.costs:
        counts[min(int(cost / width), bins - 1)] += 1
    return {
        "plan": report.plan,
        "fee_usd": _text(fee),
        "labels": [f"{width * i:.2f}–{width * (i + 1):.2f}" for i in range(bins)],
        "counts": counts,
        "over_fee": [fee is not None and width * i >= fee for i in range(bins)],
        "seats": report.seats,
        "fair_use_cap_usd": _text(report.fair_use_cap),
    }


@dataclass(frozen=True, slots=True)
class Dashboard:
    margins: MarginReport
    charts: dict[str, Any]


def dashboard_data(
    *, start: datetime, end: datetime, now: datetime, filters: MarginFilters | None = None
) -> Dashboard:
    """The charts' data; the margin by customer follows `filters` (drill-down), the
    day-by-day charts are the whole window's."""
    margins = margins_report(
        start=start, end=end, group_by="customer", filters=filters or MarginFilters(), now=now
    )
    ranked = sorted(
        (row for row in margins.rows if row.margin is not None), key=lambda row: row.margin
    )
    # The best TOP and the worst TOP, best first (fewer than 2 x TOP customers: all).
    best = ranked[-TOP:][::-1]
    worst = [row for row in ranked[:TOP] if all(row is not b for b in best)][::-1]
    shown = best + worst
    with reading().cursor() as cursor:
        cursor.execute(_COST_BY_MODEL_SQL, {"start": start, "end": end})
        by_model = cursor.fetchall()
        cursor.execute(_COST_PER_SUCCESS_SQL, {"start": start, "end": end})
        per_success = [
            (day, outcome_type, (cost / succeeded).quantize(Decimal("1e-6")))
            for day, outcome_type, cost, succeeded in cursor.fetchall()
        ]
    premium = [report for report in premium_break_even(start=start, end=end) if report.seats]
    caching = caching_levers(start=start, end=end)
    charts = {
        "currency": margins.currency,
        "margin_by_customer": {
            "labels": [row.key for row in shown],
            "margins": [str(row.margin) for row in shown],
        },
        "cost_by_model": _series(by_model),
        "cost_per_success": _series(per_success),
        "premium_histogram": (
            _histogram(max(premium, key=lambda report: report.seats)) if premium else None
        ),
        "savings": {
            # What a prompt cache could save; what application cache hits and provider
            # cache reads saved.
            "labels": ["repeated prompts", "cache hits", "cache reads"],
            "values": [
                str(caching.repeated_cost),
                str(caching.cache_hit_saving),
                str(caching.cache_read_saving),
            ],
        },
    }
    return Dashboard(margins, charts)


# --- the headline and the waterfall ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Headline:
    """The window's totals against those of the window of the same length before it."""

    currency: str
    current: MarginRow
    previous: MarginRow
    previous_start: datetime
    previous_end: datetime


def dashboard_headline(
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: MarginFilters,
    current: MarginReport | None = None,
) -> Headline:
    """Revenue, cost, margin, cost per success, outcomes and unpriced calls of the window
    and of the one before it (`current`: the window's report, when the caller has it)."""
    if current is None:
        current = margins_report(
            start=start, end=end, group_by="customer", filters=filters, now=now
        )
    length = end - start
    previous = margins_report(
        start=start - length, end=start, group_by="customer", filters=filters, now=now
    )
    return Headline(current.currency, current.totals, previous.totals, start - length, start)


@dataclass(frozen=True, slots=True)
class WaterfallStep:
    label: str
    kind: str  # revenue, model, included, unpriced, margin
    amount: Decimal | None  # signed, reporting currency; None: unknown (a rate is missing)


def margin_waterfall(
    *, start: datetime, end: datetime, now: datetime, filters: MarginFilters
) -> list[WaterfallStep]:
    """Revenue, less the inference cost of each model (the costliest first), less the
    cost of the features plans give away, is the gross margin: the steps add up to it."""
    report = margins_report(start=start, end=end, group_by=WATERFALL, filters=filters, now=now)
    steps = [WaterfallStep("revenue", "revenue", report.totals.revenue)]
    models = [row for row in report.rows if row.key != INCLUDED_KEY and row.calls]
    for row in sorted(models, key=lambda row: -(row.inference_cost or Decimal(0))):
        steps.append(
            WaterfallStep(
                row.key or "(no model)",
                "model",
                None if row.inference_cost is None else -row.inference_cost,
            )
        )
    included = next((row for row in report.rows if row.key == INCLUDED_KEY), None)
    if included is not None and included.calls:
        cost = included.inference_cost
        steps.append(
            WaterfallStep("included features", "included", None if cost is None else -cost)
        )
    revenue, cost = report.totals.revenue, report.totals.inference_cost
    margin = None if revenue is None or cost is None else revenue - cost
    steps.append(WaterfallStep("gross margin", "margin", margin))
    return steps
