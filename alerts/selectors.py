"""Reads of the alerts app."""

from datetime import datetime

from django.db.models import Q

from alerts.models import Alert, AlertDelivery, DeliveryState


def deliveries_stalled(*, before: datetime, limit: int = 1000) -> list[int]:
    """Deliveries made before `before` and never attempted (their message was lost)."""
    return list(
        AlertDelivery.objects.filter(state=DeliveryState.PENDING, attempts=0, created_at__lt=before)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def customer_alerts(*, external_id: str, limit: int = 20) -> list[Alert]:
    """The alerts fired for a customer (subject `customer:<id>`, and the grants of its
    credits), newest first: what its page in the admin lists."""
    return list(
        Alert.objects.filter(
            Q(subject=f"customer:{external_id}") | Q(subject__startswith=f"grant:{external_id}:")
        )
        .select_related("rule")
        .order_by("-created_at")[:limit]
    )
