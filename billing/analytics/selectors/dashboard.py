"""What the admin dashboard draws: plain data for its charts, from the same reports the
API answers (margins, premium break-even, savings) and two day-by-day aggregates of the
running rollup (cost by model, cost per success: billing/invoicing/selectors/running.py)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from billing.analytics.selectors.margins import (
    INCLUDED_KEY,
    WATERFALL,
    MarginFilters,
    MarginReport,
    MarginRow,
    PeriodEconomics,
    margins_report,
    periods_economics,
)
from billing.analytics.selectors.premium import PremiumBreakEven, premium_break_even
from billing.analytics.selectors.savings import caching_levers
from billing.invoicing.selectors.running import running_daily_costs, running_daily_successes
from common.concurrency import Once, side_by_side

TOP = 5
ZERO = Decimal(0)
MICRO = Decimal("1e-6")
HISTOGRAM_BINS = 8


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
    # The costs are sorted: each bin's count is where its upper edge falls among them.
    edges = [bisect_left(report.costs, width * (i + 1)) for i in range(bins - 1)]
    edges = [0, *edges, len(report.costs)]
    counts = [edges[i + 1] - edges[i] for i in range(bins)]
    return {
        "plan": report.plan,
        "fee_usd": _text(fee),
        "labels": [f"{width * i:.2f}–{width * (i + 1):.2f}" for i in range(bins)],
        "counts": counts,
        "over_fee": [fee is not None and width * i >= fee for i in range(bins)],
        "seats": report.seats,
        "fair_use_cap_usd": _text(report.fair_use_cap),
    }


def _margin_by_customer(margins: MarginReport) -> dict[str, list[str]]:
    """The best TOP customers by margin and the worst TOP, best first (fewer than 2 x TOP
    customers: all)."""
    # Each row's margin worked out once (ten thousand rows: not once per comparison).
    scored = [(margin, row) for row in margins.rows if (margin := row.margin) is not None]
    ranked = [row for _, row in sorted(scored, key=itemgetter(0))]
    best = ranked[-TOP:][::-1]
    worst = [row for row in ranked[:TOP] if all(row is not b for b in best)][::-1]
    shown = best + worst
    return {"labels": [row.key for row in shown], "margins": [str(row.margin) for row in shown]}


def _daily_charts(start: datetime, end: datetime) -> dict[str, Any]:
    """Cost by model and cost per success, day by day, from the running rollup."""
    by_model: dict[tuple[date, str], Decimal] = {}
    typed: dict[tuple[date, str], Decimal] = {}
    for day, provider, model, outcome_type, _calls, cost in running_daily_costs(
        start=start, end=end
    ):
        key = (day, f"{provider}:{model}")
        by_model[key] = by_model.get(key, ZERO) + cost
        if outcome_type:
            typed[(day, outcome_type)] = typed.get((day, outcome_type), ZERO) + cost
    # A day's cost per success of a type: what that day's calls for outcomes of the type
    # cost, over the type's successes of that day (days without a success: no point).
    per_success = [
        (day, outcome_type, (typed.get((day, outcome_type), ZERO) / succeeded).quantize(MICRO))
        for day, outcome_type, succeeded in running_daily_successes(start=start, end=end)
    ]
    return {
        "cost_by_model": _series([(*key, cost) for key, cost in sorted(by_model.items())]),
        "cost_per_success": _series(per_success),
    }


def _premium_chart(start: datetime, end: datetime) -> dict[str, Any] | None:
    """The histogram of the plan with the most premium seats in the window (None: none)."""
    premium = [report for report in premium_break_even(start=start, end=end) if report.seats]
    return _histogram(max(premium, key=lambda report: report.seats)) if premium else None


def _savings_chart(start: datetime, end: datetime) -> dict[str, Any]:
    caching = caching_levers(start=start, end=end)
    # What a prompt cache could save; what application cache hits and provider cache
    # reads saved.
    return {
        "labels": ["repeated prompts", "cache hits", "cache reads"],
        "values": [
            str(caching.repeated_cost),
            str(caching.cache_hit_saving),
            str(caching.cache_read_saving),
        ],
    }


@dataclass(frozen=True, slots=True)
class Headline:
    """The window's totals against those of the window of the same length before it."""

    currency: str
    current: MarginRow
    previous: MarginRow
    previous_start: datetime
    previous_end: datetime


@dataclass(frozen=True, slots=True)
class DashboardPage:
    """Everything the dashboard's page shows for a window."""

    margins: MarginReport  # by customer: the margin chart, the headline, the CSV's default
    table: MarginReport  # grouped as the operator asked (the same report by customer)
    headline: Headline
    waterfall: list[WaterfallStep]
    charts: dict[str, Any]  # plain data for the page's charts


# The page's reads are independent: they run side by side on this many connections (the
# margin report, the longest, on one; the rest share the others). See common/concurrency.py.
READERS = 3


def dashboard_page(
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: MarginFilters,
    group_by: str = "customer",
    readers: int = READERS,
) -> DashboardPage:
    """The headline, the waterfall, the margin table and the charts of [start, end). The
    margin reports follow `filters` (drill-down); the day-by-day, premium and savings
    charts are the whole window's."""
    length = end - start
    # The window's periods that no stored breakdown covers (its open periods, rated live),
    # which the reports of the window share: made by the first to need them.
    economics = Once(
        lambda: periods_economics(start=start, end=end, now=now, customer=filters.customer)
    )

    def report(group: str) -> Callable[[], MarginReport]:
        return lambda: margins_report(
            start=start, end=end, group_by=group, filters=filters, now=now, economics=economics()
        )

    calls: dict[str, Callable[[], Any]] = {
        "margins": report("customer"),  # the longest first
        "premium": lambda: _premium_chart(start, end),
        "waterfall": lambda: margin_waterfall(
            start=start, end=end, now=now, filters=filters, economics=economics()
        ),
        "daily": lambda: _daily_charts(start, end),
        # (Its own periods: a window's periods are not another window's.)
        "previous": lambda: margins_report(
            start=start - length, end=start, group_by="customer", filters=filters, now=now
        ),
        "savings": lambda: _savings_chart(start, end),
    }
    if group_by != "customer":
        calls["table"] = report(group_by)
    found = side_by_side(calls, workers=readers)
    margins, previous = found["margins"], found["previous"]
    return DashboardPage(
        margins=margins,
        table=found.get("table", margins),
        headline=Headline(margins.currency, margins.totals, previous.totals, start - length, start),
        waterfall=found["waterfall"],
        charts={
            "currency": margins.currency,
            "margin_by_customer": _margin_by_customer(margins),
            **found["daily"],
            "premium_histogram": found["premium"],
            "savings": found["savings"],
        },
    )


# --- the waterfall ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaterfallStep:
    label: str
    kind: str  # revenue, model, included, unpriced, margin
    amount: Decimal | None  # signed, reporting currency; None: unknown (a rate is missing)


def margin_waterfall(
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: MarginFilters,
    economics: list[PeriodEconomics] | None = None,
) -> list[WaterfallStep]:
    """Revenue, less the inference cost of each model (the costliest first), less the
    cost of the features plans give away, is the gross margin: the steps add up to it.
    `economics`: as margins_report's."""
    report = margins_report(
        start=start, end=end, group_by=WATERFALL, filters=filters, now=now, economics=economics
    )
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
