"""Celery tasks of credits: thin, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from billing.credits.services import plan_credits_grant_running


@shared_task(name="credits.tasks.grant_plan_credits")
def grant_plan_credits() -> int:
    """Beat: the grants the plans give the periods running now, made once each."""
    return plan_credits_grant_running(now=timezone.now())
