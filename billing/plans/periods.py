"""Billing periods: half-open [start, end) intervals from a day-of-month anchor, in the
customer's timezone. Pure functions.

A period starts at 00:00 local time on the anchor day (the 31st is the last day of a
shorter month) and ends where the next begins, so periods tile time with no gap and no
overlap, whatever DST does: a period holding a DST change is an hour shorter or longer.
Datetimes in and out are timezone-aware; stored and compared as UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def _month_start(year: int, month: int, anchor_day: int, zone: ZoneInfo) -> datetime:
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return datetime.combine(date(year, month, day), time(0), tzinfo=zone).astimezone(UTC)


def _shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def period_containing(
    moment: datetime, *, anchor_day: int, timezone: str
) -> tuple[datetime, datetime]:
    """The anchored period [start, end) that holds `moment`."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    year, month = local.year, local.month
    start = _month_start(year, month, anchor_day, zone)
    if moment < start:
        year, month = _shift(year, month, -1)
        start = _month_start(year, month, anchor_day, zone)
    next_year, next_month = _shift(year, month, 1)
    return start, _month_start(next_year, next_month, anchor_day, zone)


def period_after(end: datetime, *, anchor_day: int, timezone: str) -> tuple[datetime, datetime]:
    """The period that begins at `end`, the end of the one before."""
    return period_containing(end, anchor_day=anchor_day, timezone=timezone)


def subscription_period(
    moment: datetime, *, started_at: datetime, anchor_day: int, timezone: str
) -> tuple[datetime, datetime]:
    """The period holding `moment` for a subscription started at `started_at`: its first
    period runs from the start to the next anchor; later ones anchor to anchor."""
    start, end = period_containing(moment, anchor_day=anchor_day, timezone=timezone)
    return max(start, started_at), end
