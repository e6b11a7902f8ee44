"""Celery tasks of spend limits: thin, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from billing.limits.services import reservations_expire


@shared_task(name="limits.tasks.expire_reservations")
def expire_reservations() -> int:
    """Beat: open reservations past their time stop holding, once each."""
    return reservations_expire(now=timezone.now())
