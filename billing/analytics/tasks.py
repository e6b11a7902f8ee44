"""Celery tasks of analytics: thin, take ids, safe to run twice."""

from celery import shared_task

from billing.analytics.selectors import invoices_unreconciled
from billing.analytics.services import invoices_reconcile

# Task names are those of earlier paybacks (billing.tasks.*), where every billing task
# lived in one module: messages queued before an upgrade still find their task, and beat
# and the services enqueue by these names (config/settings/celery.py, common/queue.py).


@shared_task(name="billing.tasks.reconcile_invoices", acks_late=True)
def reconcile_invoices(invoice_ids: list[int]) -> int:
    """After a close: the margin breakdown of its invoices (safe to run twice)."""
    return invoices_reconcile(invoice_ids=invoice_ids)


@shared_task(name="billing.tasks.reconcile_missing")
def reconcile_missing(limit: int = 5000) -> int:
    """Beat: make the breakdown of invoices left without one (a lost task, or closed by
    an older payback)."""
    invoice_ids = invoices_unreconciled(limit=limit)
    return invoices_reconcile(invoice_ids=invoice_ids) if invoice_ids else 0
