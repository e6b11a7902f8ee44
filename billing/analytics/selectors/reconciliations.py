"""Which closed invoices still lack their margin breakdown."""

from billing.invoicing.models import Invoice


def invoices_unreconciled(*, limit: int) -> list[int]:
    """Invoices whose margin breakdown is not made yet (its task was lost, or they were
    closed by an older payback), oldest first."""
    return list(
        Invoice.objects.filter(reconciliation__breakdown_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
