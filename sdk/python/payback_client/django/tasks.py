"""For a backend that runs Celery: schedule this task (e.g. every few seconds in beat)."""

from celery import shared_task

from payback_client.django.outbox import outbox_send


@shared_task(name="payback_client.django.tasks.send_payback_outbox", ignore_result=True)
def send_payback_outbox(batch_size: int = 1000) -> int:
    """Send the outbox until it is empty or payback stops answering; rows sent."""
    sent = 0
    while (done := outbox_send(batch_size=batch_size)).sent or done.refused:
        sent += done.sent
    return sent
