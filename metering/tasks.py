"""Celery tasks of the metering app: thin, take ids, safe to run twice."""

from celery import shared_task

from metering.models import ModelPriceOverride
from metering.selectors import unpriced_models_with_override
from metering.services import event_partitions_ensure, events_price_unpriced


@shared_task
def price_unpriced_events(override_id: int) -> int:
    """Price the unpriced events that a newly saved override covers."""
    override = ModelPriceOverride.objects.filter(pk=override_id).first()
    if override is None:
        return 0
    return events_price_unpriced(provider=override.provider, model=override.model)


@shared_task
def price_unpriced_events_sweep() -> int:
    """Beat's safety net: price whatever a lost task message left unpriced."""
    return sum(
        events_price_unpriced(provider=provider, model=model)
        for provider, model in unpriced_models_with_override()
    )


@shared_task
def ensure_event_partitions() -> list[str]:
    """Beat: the events table's partitions for this month and the months ahead."""
    return [str(month) for month in event_partitions_ensure()]
