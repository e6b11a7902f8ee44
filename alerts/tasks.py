"""Celery tasks of the alerts app: thin, take ids, safe to run twice."""

from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from alerts.models import DeliveryState
from alerts.selectors import deliveries_stalled
from alerts.services import alert_deliver, alerts_evaluate
from common.queue import enqueue


@shared_task
def evaluate_alerts() -> int:
    """Beat: evaluate the rules over the month so far; returns how many alerts are new."""
    return len(alerts_evaluate())


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_alert(self: Task, delivery_id: int) -> str:
    """Post one alert to one endpoint; on failure retry after 1, 2, 4 … times the backoff
    (at most an hour), ALERT_WEBHOOK_MAX_ATTEMPTS attempts in all."""
    attempt = self.request.retries + 1
    outcome = alert_deliver(
        delivery_id=delivery_id, last_attempt=attempt >= settings.ALERT_WEBHOOK_MAX_ATTEMPTS
    )
    if outcome == DeliveryState.PENDING:  # not yet: try again
        delay = min(settings.ALERT_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1), 3600)
        raise self.retry(countdown=delay)
    return outcome


@shared_task
def resend_stalled_deliveries(older_than_seconds: int = 600) -> int:
    """Beat: send again deliveries never attempted (their message was lost). Returns how
    many were sent."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    return sum(
        enqueue(deliver_alert, delivery_id) for delivery_id in deliveries_stalled(before=before)
    )
