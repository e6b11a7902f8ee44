"""Mirroring a top-up to Stripe: the customer, an invoice with one item for the credits
bought, finalized so that Stripe charges it. Each step sets a marker before its call,
under idempotency keys from the top-up's row, as invoices are pushed (push.py); the
grant is made when Stripe says the invoice is paid (webhooks.py)."""

from __future__ import annotations

from django.utils import timezone

from billing.credits.models import TopUp, TopUpStatus
from billing.credits.services import top_up_moved, top_up_paid
from billing.money import to_minor_units
from billing.stripe_sync import stripe_api
from billing.stripe_sync.services.push import stripe_customer_of


def _mark(top_up: TopUp, step: str) -> None:
    TopUp.objects.filter(pk=top_up.pk).update(push_step=step)


def top_up_push(*, top_up_id: int) -> TopUp:
    """Make the top-up's Stripe invoice and finalize it. Safe to run again at any point;
    raises StripeRetryable or StripeRefused for the task to handle."""
    top_up = TopUp.objects.select_related("customer").get(pk=top_up_id)
    if top_up.status != TopUpStatus.PENDING or not stripe_api.configured():
        return top_up
    _mark(top_up, "customer")
    customer = stripe_customer_of(top_up.customer)
    description = f"Prepaid credits: {top_up.amount.normalize():f} {top_up.currency}"
    if not top_up.stripe_invoice_id:
        _mark(top_up, "invoice")
        top_up.stripe_invoice_id = stripe_api.top_up_invoice_create(
            top_up_pk=top_up.pk, stripe_customer=customer, description=description
        )
        TopUp.objects.filter(pk=top_up.pk).update(stripe_invoice_id=top_up.stripe_invoice_id)
    _mark(top_up, "item")  # again after a crash: the same item, under its key
    stripe_api.top_up_item_create(
        top_up_pk=top_up.pk,
        stripe_customer=customer,
        stripe_invoice=top_up.stripe_invoice_id,
        amount=to_minor_units(top_up.amount, top_up.currency),
        currency=top_up.currency,
        description=description,
    )
    _mark(top_up, "finalize")
    finalized = stripe_api.top_up_invoice_finalize(
        top_up_pk=top_up.pk, stripe_invoice=top_up.stripe_invoice_id
    )
    TopUp.objects.filter(pk=top_up.pk).update(
        push_step="", hosted_invoice_url=finalized.hosted_invoice_url
    )
    if finalized.status == "paid":  # charged at once: no need to wait for the webhook
        return top_up_paid(top_up_id=top_up.pk, at=timezone.now())
    return top_up_moved(top_up_id=top_up.pk, status=TopUpStatus.OPEN)


def top_up_push_failed(*, top_up_id: int, error: str) -> TopUp:
    return top_up_moved(top_up_id=top_up_id, status=TopUpStatus.FAILED, error=error)
