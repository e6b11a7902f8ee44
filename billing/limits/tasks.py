"""Celery tasks of spend limits: thin, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from billing.limits.services import auto_top_ups_check, reservations_expire


@shared_task(name="limits.tasks.expire_reservations")
def expire_reservations() -> int:
    """Beat: open reservations past their time stop holding, once each."""
    return reservations_expire(now=timezone.now())


@shared_task(name="limits.tasks.check_auto_top_ups")
def check_auto_top_ups() -> int:
    """Beat: a top-up for each customer whose available amount fell below its auto
    top-up's threshold, once per crossing."""
    return auto_top_ups_check(now=timezone.now())
