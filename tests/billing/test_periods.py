"""Billing periods: anchored, half-open, in the customer's timezone, DST and month ends."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.plans.periods import period_after, period_containing, subscription_period


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_utc_month_on_anchor_day_1():
    assert period_containing(utc(2026, 11, 27, 12), anchor_day=1, timezone="UTC") == (
        utc(2026, 11, 1),
        utc(2026, 12, 1),
    )


def test_periods_are_half_open():
    start, _ = period_containing(utc(2026, 12, 1), anchor_day=1, timezone="UTC")
    assert start == utc(2026, 12, 1)  # the end of November's period begins December's


def test_berlin_periods_follow_local_midnight_across_dst():
    # March 2026 in Berlin: CET (+1) until the 29th, CEST (+2) after.
    start, end = period_containing(utc(2026, 3, 15), anchor_day=1, timezone="Europe/Berlin")
    assert start == utc(2026, 2, 28, 23)  # 1 March 00:00 CET
    assert end == utc(2026, 3, 31, 22)  # 1 April 00:00 CEST
    assert end - start == timedelta(days=31) - timedelta(hours=1)  # the DST hour is missing


def test_new_york_november_is_an_hour_longer():
    start, end = period_containing(utc(2026, 11, 15), anchor_day=1, timezone="America/New_York")
    assert end - start == timedelta(days=30, hours=1)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # anchor 31: February's period starts on its last day, the 28th
        (utc(2026, 3, 10), (utc(2026, 2, 28), utc(2026, 3, 31))),
        (utc(2026, 2, 27), (utc(2026, 1, 31), utc(2026, 2, 28))),
        (utc(2026, 4, 30, 23), (utc(2026, 4, 30), utc(2026, 5, 31))),
        (utc(2026, 4, 29, 23), (utc(2026, 3, 31), utc(2026, 4, 30))),
    ],
)
def test_anchor_day_31_uses_the_last_day_of_shorter_months(moment, expected):
    assert period_containing(moment, anchor_day=31, timezone="UTC") == expected


def test_periods_tile_time_without_gaps_for_two_years():
    _, end = period_containing(utc(2026, 1, 5), anchor_day=30, timezone="Australia/Sydney")
    for _ in range(24):
        next_start, next_end = period_after(end, anchor_day=30, timezone="Australia/Sydney")
        assert next_start == end and next_end > next_start
        end = next_end


def test_the_first_period_of_a_subscription_starts_with_it():
    started = utc(2026, 11, 17, 9, 30)
    assert subscription_period(started, started_at=started, anchor_day=1, timezone="UTC") == (
        started,
        utc(2026, 12, 1),
    )
