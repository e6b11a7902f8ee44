"""Celery tasks of spend limits: thin, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from billing.limits.services import (
    auto_top_ups_check,
    fair_use_caps_compute,
    reservations_expire,
)


@shared_task(name="limits.tasks.expire_reservations")
def expire_reservations() -> int:
    """Beat: open reservations past their time stop holding, once each."""
    return reservations_expire(now=timezone.now())


@shared_task(name="limits.tasks.check_auto_top_ups")
def check_auto_top_ups() -> int:
    """Beat: a top-up for each customer whose available amount fell below its auto
    top-up's threshold, once per crossing."""
    return auto_top_ups_check(now=timezone.now())


@shared_task(name="limits.tasks.compute_fair_use_caps")
def compute_fair_use_caps() -> int:
    """Beat, hourly: each plan's fair-use cap per premium seat from the last whole month
    (the same caps until the month turns)."""
    return fair_use_caps_compute(now=timezone.now())
