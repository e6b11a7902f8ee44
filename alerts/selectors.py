"""Reads of the alerts app."""

from datetime import datetime

from alerts.models import AlertDelivery, DeliveryState


def deliveries_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Deliveries made before `before` and never attempted (their message was lost)."""
    return list(
        AlertDelivery.objects.filter(state=DeliveryState.PENDING, attempts=0, created_at__lt=before)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
