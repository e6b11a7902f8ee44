"""Mirroring an invoice to Stripe: customer, invoice, one invoice item per line (quantity,
unit amount and service period), then finalize with collection on. Each step sets a
marker (push_step) before its Stripe call and stores what Stripe made after it; every
call's idempotency key is derived from the local row, so a push that crashed between
Stripe's answer and our commit, run again, repeats that call and gets the same object
back: nothing is made twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.invoicing.models import Invoice, InvoiceStatus, PushState
from billing.invoicing.services import invoice_can_move, invoice_can_reach, invoice_move
from billing.money import minor_unit_digits
from billing.stripe_sync import stripe_api
from billing.stripe_sync.models import StripeCustomer
from metering.models import Customer

logger = logging.getLogger(__name__)


def invoice_description(invoice: Invoice) -> str:
    """What Stripe shows as the invoice's memo, in its e-mail and on its hosted page: the
    period, and the link to the statement of what it bills (when PUBLIC_URL is set)."""
    period = f"{invoice.period_start:%Y-%m-%d} – {invoice.period_end:%Y-%m-%d}"
    url = import_string(settings.STATEMENT_URL)(invoice.pk)
    return f"{period}. Every outcome billed: {url}" if url else period


def _mark(invoice: Invoice, step: str) -> None:
    Invoice.objects.filter(pk=invoice.pk).update(push_state=PushState.PUSHING, push_step=step)


def stripe_customer_of(customer: Customer) -> str:
    """The customer's Stripe customer, made the first time (invoices and top-ups)."""
    known = StripeCustomer.objects.filter(customer=customer).values_list("stripe_id", flat=True)
    if known:
        return known[0]
    stripe_id = stripe_api.customer_create(
        customer_pk=customer.pk,
        external_id=customer.external_id,
        name=customer.name,
        email=customer.email,
    )
    # Two pushes at once get the same Stripe customer (same idempotency key): one row.
    StripeCustomer.objects.get_or_create(customer=customer, defaults={"stripe_id": stripe_id})
    return stripe_id


def invoice_push(*, invoice_id: int) -> Invoice:
    """Push a draft invoice to Stripe and finalize it there and here. Safe to run again
    at any point; raises StripeRetryable or StripeRefused for the task to handle."""
    invoice = Invoice.objects.select_related("customer", "plan_version").get(pk=invoice_id)
    if (
        invoice.push_state in (PushState.PUSHED, PushState.NOT_SENT)
        or invoice.status == InvoiceStatus.VOID
    ):
        return invoice
    if invoice.total == 0 and not settings.BILLING_SEND_ZERO_INVOICES:
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
            invoice.push_state = PushState.NOT_SENT
            if invoice.status == InvoiceStatus.DRAFT:
                invoice.status = InvoiceStatus.FINALIZED
            # save(), not update(): every status change is in the audit log.
            invoice.save(update_fields=["push_state", "status", "updated_at"])
        return invoice
    Invoice.objects.filter(pk=invoice.pk).update(push_attempts=F("push_attempts") + 1)
    _mark(invoice, "customer")
    stripe_customer = stripe_customer_of(invoice.customer)
    if not invoice.stripe_invoice_id:
        _mark(invoice, "invoice")
        invoice.stripe_invoice_id = stripe_api.invoice_create(
            invoice_pk=invoice.pk,
            stripe_customer=stripe_customer,
            collection_method=invoice.plan_version.collection_method,
            days_until_due=invoice.plan_version.days_until_due,
            description=invoice_description(invoice),
        )
        Invoice.objects.filter(pk=invoice.pk).update(stripe_invoice_id=invoice.stripe_invoice_id)
    lines = invoice.lines.filter(stripe_item_id="").select_related("source_invoice")
    for line in lines.order_by("position"):
        _mark(invoice, f"line {line.position}")
        terms = stripe_line_terms(
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            currency=invoice.currency,
        )
        served = line.source_invoice or invoice  # late usage and credits: their own period
        line.stripe_item_id = stripe_api.invoice_item_create(
            line_pk=line.pk,
            stripe_customer=stripe_customer,
            stripe_invoice=invoice.stripe_invoice_id,
            quantity=terms.quantity,
            unit_amount_decimal=terms.unit_amount_decimal,
            currency=invoice.currency,
            description=line.description + terms.note,
            period_start=served.period_start,
            period_end=served.period_end,
        )
        line.save(update_fields=["stripe_item_id"])
    _mark(invoice, "finalize")
    finalized = stripe_api.invoice_finalize(
        invoice_pk=invoice.pk, stripe_invoice=invoice.stripe_invoice_id
    )
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        invoice.push_state, invoice.push_step, invoice.push_error = PushState.PUSHED, "", ""
        invoice.hosted_invoice_url = finalized.hosted_invoice_url
        invoice.invoice_pdf = finalized.invoice_pdf
        # The status Stripe answered (open, or already paid), without waiting for its
        # webhook; forward only, as a webhook that came first may have moved it on.
        status = LOCAL_STATUS.get(finalized.status, InvoiceStatus.FINALIZED)
        for step in (InvoiceStatus.FINALIZED, status):
            if invoice_can_reach(invoice.status, step):
                invoice.status = step
        invoice.save(
            update_fields=[
                "push_state",
                "push_step",
                "push_error",
                "hosted_invoice_url",
                "invoice_pdf",
                "status",
                "updated_at",
            ]
        )
    return invoice


@dataclass(frozen=True, slots=True)
class StripeLineTerms:
    quantity: int
    unit_amount_decimal: Decimal  # minor units
    note: str  # appended to the description when the quantity is not Stripe's


def stripe_line_terms(
    *, quantity: Decimal, unit_price: Decimal, amount: int, currency: str
) -> StripeLineTerms:
    """A local line as Stripe's whole quantity × unit amount in minor units, whose product
    is exactly the line's amount: Stripe then has nothing to round, so its lines sum to
    the local total. `21 × 0.99 USD` becomes 21 × 99 cents, and a credit `-1 × 0.99`
    becomes 1 × -99. A line whose quantity is not whole (usage at cost: the quantity is
    the cost; prorated seat-days) or whose product has a fraction of a minor unit (3 ×
    0.333) goes as 1 × its amount, with its quantity and unit price in the description."""
    if quantity and quantity == quantity.to_integral_value():
        unit = (
            unit_price.scaleb(minor_unit_digits(currency)) * (1 if quantity > 0 else -1)
        ).normalize()
        if abs(quantity) * unit == amount:
            return StripeLineTerms(int(abs(quantity)), unit, "")
    note = f" ({quantity.normalize():f} × {unit_price.normalize():f} {currency})"
    return StripeLineTerms(1, Decimal(amount), note)


def invoice_push_failed(*, invoice_id: int, error: str) -> None:
    """Give up on pushing: the admin lists the invoice as failed (with a retry action)."""
    Invoice.objects.filter(pk=invoice_id).update(
        push_state=PushState.FAILED, push_error=error[:2000]
    )
    logger.error("ALERT: invoice %s could not be pushed to Stripe: %s", invoice_id, error)


# Stripe's invoice statuses in payback's words.
LOCAL_STATUS: dict[str, str] = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.FINALIZED,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}


def stripe_drift_check(*, since: datetime) -> int:
    """Compare pushed invoices closed since `since` with Stripe (status and total); store
    the difference on each (the admin lists them). Returns how many differ."""
    drifted = 0
    pushed = Invoice.objects.filter(push_state=PushState.PUSHED, closed_at__gte=since).exclude(
        stripe_invoice_id=""
    )
    for invoice in pushed.iterator(chunk_size=200):
        remote = stripe_api.invoice_state(stripe_invoice=invoice.stripe_invoice_id)
        differences = []
        if LOCAL_STATUS.get(remote.status, remote.status) != invoice.status:
            differences.append(f"status: Stripe {remote.status}, here {invoice.status}")
        if remote.total != max(invoice.total, 0):
            differences.append(f"total: Stripe {remote.total}, here {invoice.total}")
        drift = "; ".join(differences)
        drifted += bool(drift)
        Invoice.objects.filter(pk=invoice.pk).update(drift=drift, drift_checked_at=timezone.now())
    return drifted


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
