"""Closing a customer's billing period into its invoice, exactly once, and moving an
invoice through its states."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.integrations import stripe as stripe_api
from billing.models import Invoice, InvoiceLine, InvoiceStatus, Reconciliation, Subscription
from billing.periods import subscription_period
from billing.rating import InvoiceLine as RatedLine
from billing.rating import rate_adjustments
from billing.selectors import (
    invoice_preview,
    late_adjustments,
    plan_in_effect,
    plan_version_current,
)
from config.errors import ApiError, ErrorDetail
from metering.models import Customer
from metering.selectors import customer_usage
from outcomes.selectors import premium_active_seats

logger = logging.getLogger(__name__)


class PeriodNotReady(Exception):
    """The period before this one is not invoiced yet: periods close in order."""


def _adjustment_lines(
    customer: Customer, start: datetime, closed_at: datetime, currency: str
) -> list[RatedLine]:
    """Late usage and credits for earlier periods, changed since the last close."""
    last_close = (
        Invoice.objects.filter(customer=customer, period_start__lt=start)
        .order_by("-closed_at")
        .values_list("closed_at", flat=True)
        .first()
    )
    if last_close is None:
        return []
    lines: list[RatedLine] = []
    for source, adjustment in late_adjustments(
        customer=customer, period_start=start, since=last_close, until=closed_at
    ):
        if adjustment.terms.currency != currency:
            logger.error(
                "late usage for invoice %s is in %s, this invoice in %s: not billed",
                source.pk,
                adjustment.terms.currency,
                currency,
            )
            continue
        lines.extend(rate_adjustments(adjustment, currency))
    return lines


def period_close(*, customer_id: int, period_start: datetime) -> Invoice:
    """The invoice of the customer's period starting at `period_start`, created if it
    does not exist yet. Safe to run twice, at once or again: the subscription row lock
    serialises closes of one customer, and the unique (customer, period_start) is the
    guard underneath.

    Everything is read as of one moment, `closed_at`: the facts stored by then are on this
    invoice; those stored later for this or an earlier period are late usage (or credits)
    on the next one.
    """
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("customer", "plan")
            .get(customer_id=customer_id)
        )
        existing = Invoice.objects.filter(
            customer_id=customer_id, period_start=period_start
        ).first()
        if existing is not None:
            return existing
        start, end = subscription_period(
            period_start,
            started_at=subscription.started_at,
            anchor_day=subscription.billing_anchor_day,
            timezone=subscription.timezone,
        )
        if start != period_start:
            raise ValueError(
                f"{period_start.isoformat()} does not start a period of {subscription}"
            )
        if (
            start > subscription.started_at
            and not Invoice.objects.filter(customer_id=customer_id, period_end=start).exists()
        ):
            raise PeriodNotReady(f"the period before {start.isoformat()} is not invoiced yet")
        closed_at = timezone.now()
        customer = subscription.customer
        usage = customer_usage(customer=customer, start=start, end=end, received_until=closed_at)
        seats = premium_active_seats(
            customer=customer, start=start, end=end, received_until=closed_at
        )
        preview = invoice_preview(usage=usage, active_seats=seats, as_of=closed_at)
        version = plan_version_current(
            plan_id=plan_in_effect(subscription=subscription, moment=start)
        )
        assert preview is not None and version is not None, "a subscription has a plan version"
        rated, margin = preview.invoice, preview.margin
        lines = [*rated.lines, *_adjustment_lines(customer, start, closed_at, rated.currency)]
        invoice = Invoice.objects.create(
            customer=customer,
            period_start=start,
            period_end=end,
            plan_version=version,
            currency=rated.currency,
            total=sum(line.amount for line in lines),
            closed_at=closed_at,
        )
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
            for position, line in enumerate(lines, start=1)
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
        if stripe_api.configured():
            from billing.tasks import push_invoice

            push_invoice.delay_on_commit(invoice.pk)
    if margin.margin is not None and margin.margin < 0:
        logger.warning(
            "negative margin: customer %s period %s margin %s USD",
            customer.external_id,
            start.date(),
            margin.margin,
        )
    return invoice


# draft -> finalized -> paid | void | uncollectible; an uncollectible invoice may still
# be paid or voided (as in Stripe). Nothing moves backwards.
_MOVES: dict[str, frozenset[str]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.VOID}),
    InvoiceStatus.FINALIZED: frozenset(
        {InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}
    ),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
}


def invoice_can_move(current: str, target: str) -> bool:
    return target in _MOVES.get(current, frozenset())


def invoice_can_reach(current: str, target: str) -> bool:
    """Whether `target` lies ahead of `current` (in one move or more): a webhook may
    report a later state before the one between (paid before finalized)."""
    ahead, seen = [current], {current}
    while ahead:
        for following in _MOVES.get(ahead.pop(), frozenset()):
            if following == target:
                return True
            if following not in seen:
                seen.add(following)
                ahead.append(following)
    return False


def invoice_cancel(*, invoice_id: int, status: str) -> Invoice:
    """An operator's void or mark-uncollectible: in Stripe first when the invoice is
    there (so the two never disagree for long), then here."""
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.status != status and not invoice_can_move(invoice.status, status):
        return invoice_move(invoice_id=invoice_id, status=status)  # refused with a 409
    if invoice.stripe_invoice_id and invoice.status != status:
        if status == InvoiceStatus.VOID:
            stripe_api.invoice_void(invoice_pk=invoice.pk, stripe_invoice=invoice.stripe_invoice_id)
        elif status == InvoiceStatus.UNCOLLECTIBLE:
            stripe_api.invoice_mark_uncollectible(
                invoice_pk=invoice.pk, stripe_invoice=invoice.stripe_invoice_id
            )
    return invoice_move(invoice_id=invoice_id, status=status)


def invoice_move(*, invoice_id: int, status: str) -> Invoice:
    """Move an invoice to `status`; the same status again changes nothing; a move the
    state machine does not allow is refused (409)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status == status:
            return invoice
        if not invoice_can_move(invoice.status, status):
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
