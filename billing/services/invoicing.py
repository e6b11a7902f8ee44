"""Closing a customer's billing period into its invoice, exactly once, and moving an
invoice through its states."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, InvoiceStatus, Reconciliation, Subscription
from billing.periods import subscription_period
from billing.selectors import invoice_preview, plan_version_current
from config.errors import ApiError, ErrorDetail
from metering.selectors import customer_usage
from outcomes.selectors import premium_active_seats

logger = logging.getLogger(__name__)


def period_close(*, customer_id: int, period_start: datetime) -> Invoice:
    """The invoice of the customer's period starting at `period_start`, created if it
    does not exist yet. Safe to run twice, at once or again: the unique (customer,
    period_start) lets one transaction create it and the others return it."""
    existing = Invoice.objects.filter(customer_id=customer_id, period_start=period_start).first()
    if existing is not None:
        return existing
    subscription = Subscription.objects.select_related("customer", "plan").get(
        customer_id=customer_id
    )
    start, end = subscription_period(
        period_start,
        started_at=subscription.started_at,
        anchor_day=subscription.billing_anchor_day,
        timezone=subscription.timezone,
    )
    if start != period_start:
        raise ValueError(f"{period_start.isoformat()} does not start a period of {subscription}")
    closed_at = timezone.now()
    customer = subscription.customer
    usage = customer_usage(customer=customer, start=start, end=end)
    seats = premium_active_seats(customer=customer, start=start, end=end)
    preview = invoice_preview(usage=usage, active_seats=seats)
    version = plan_version_current(plan_id=subscription.plan_id)
    assert preview is not None and version is not None, "a subscription has a plan version"
    rated, margin = preview.invoice, preview.margin
    with transaction.atomic():
        invoice, created = Invoice.objects.get_or_create(
            customer=customer,
            period_start=start,
            defaults={
                "period_end": end,
                "plan_version": version,
                "currency": rated.currency,
                "total": rated.total,
                "closed_at": closed_at,
            },
        )
        if not created:
            return invoice
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                position=position,
                kind=line.kind,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
            )
            for position, line in enumerate(rated.lines, start=1)
        )
        Reconciliation.objects.create(
            invoice=invoice,
            revenue=margin.revenue,
            inference_cost=margin.inference_cost,
            calls=usage.totals.calls,
            unpriced_calls=margin.unpriced_calls,
            margin=margin.margin,
            margin_percent=margin.margin_percent,
        )
    if margin.margin is not None and margin.margin < 0:
        logger.warning(
            "negative margin: customer %s period %s margin %s USD",
            customer.external_id,
            start.date(),
            margin.margin,
        )
    return invoice


# draft -> finalized -> paid | void | uncollectible; nothing else.
_MOVES: dict[str, frozenset[str]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.VOID}),
    InvoiceStatus.FINALIZED: frozenset(
        {InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}
    ),
}


def invoice_move(*, invoice_id: int, status: str) -> Invoice:
    """Move an invoice to `status`; the same status again changes nothing; a move the
    state machine does not allow is refused (409)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status == status:
            return invoice
        if status not in _MOVES.get(invoice.status, frozenset()):
            raise ApiError(
                [
                    ErrorDetail(
                        field="status",
                        code="invalid_transition",
                        message=f"Invoice {invoice.pk} is {invoice.status}; "
                        f"it cannot become {status}.",
                    )
                ],
                status_code=409,
            )
        invoice.status = status
        invoice.save(update_fields=["status", "updated_at"])
    return invoice
