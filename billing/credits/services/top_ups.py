"""Top-ups: credits bought through Stripe (its invoice is made by billing/stripe_sync,
the grant when Stripe says it is paid), and the auto top-up that buys them when what is
available falls below a threshold."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from api.errors import refusal
from billing.credits.models import (
    AutoTopUp,
    CreditEntry,
    CreditGrant,
    EntryKind,
    GrantKind,
    TopUp,
    TopUpStatus,
)
from billing.credits.services.grants import money_checked
from common.queue import enqueue_on_commit
from metering.models import Customer

PUSH_TOP_UP = "stripe_sync.tasks.push_top_up"  # by name: billing/stripe_sync is above


def top_up_create(
    *, customer: Customer, amount: Decimal, currency: str, external_id: str = "", auto: bool = False
) -> tuple[TopUp, bool]:
    """Buy credits: a top-up whose Stripe invoice (charged automatically) is made after
    the commit; its grant is made when Stripe says it is paid (top_up_paid). The same
    `external_id` again is the same top-up (False); other terms under it are a 409."""
    money_checked(amount, currency)
    if external_id:
        found = TopUp.objects.filter(customer=customer, external_id=external_id).first()
        if found is not None:
            if (found.amount, found.currency) != (amount, currency):
                raise refusal(
                    "id", "conflict", f"Top-up `{external_id}` exists with other terms.", 409
                )
            return found, False
    try:
        with transaction.atomic():
            top_up = TopUp.objects.create(
                customer=customer,
                external_id=external_id or f"top_up_{uuid.uuid4().hex}",
                currency=currency,
                amount=amount,
                auto=auto,
            )
            if settings.STRIPE_API_KEY:  # without Stripe it stays pending: nothing charges it
                enqueue_on_commit(PUSH_TOP_UP, top_up.pk)
    except IntegrityError:  # the same id, sent twice at once
        return top_up_create(
            customer=customer, amount=amount, currency=currency, external_id=external_id
        )
    return top_up, True


def top_up_paid(*, top_up_id: int, at: datetime) -> TopUp:
    """Stripe says the top-up's invoice is paid: its paid grant, effective then, with its
    ledger entry, once (a second delivery finds it made)."""
    with transaction.atomic():
        top_up = TopUp.objects.select_for_update().get(pk=top_up_id)
        if top_up.grant_id is not None:
            return top_up
        grant = CreditGrant.objects.create(
            customer_id=top_up.customer_id,
            external_id=f"top-up:{top_up.external_id}",
            kind=GrantKind.PAID,
            currency=top_up.currency,
            amount=top_up.amount,
            effective_at=at,
            description="Credits bought" + (" (auto top-up)" if top_up.auto else ""),
        )
        CreditEntry.objects.create(grant=grant, kind=EntryKind.GRANT, amount=grant.amount, at=at)
        top_up.grant, top_up.status, top_up.paid_at = grant, TopUpStatus.PAID, at
        top_up.save(update_fields=["grant", "status", "paid_at"])
    return top_up


def top_up_moved(*, top_up_id: int, status: str, error: str = "") -> TopUp:
    """A top-up's Stripe invoice was finalized (open), voided, or refused (failed); a paid
    top-up stays paid."""
    with transaction.atomic():
        top_up = TopUp.objects.select_for_update().get(pk=top_up_id)
        if top_up.status != TopUpStatus.PAID:
            top_up.status, top_up.push_error = status, error[:2000]
            top_up.save(update_fields=["status", "push_error"])
    return top_up


def auto_top_up_set(
    *, customer: Customer, threshold: Decimal, amount: Decimal, currency: str
) -> AutoTopUp:
    money_checked(amount, currency)
    if threshold < 0:
        raise refusal("threshold", "invalid", "Must be 0 or more.")
    auto, _ = AutoTopUp.objects.update_or_create(
        customer=customer,
        defaults={"threshold": threshold, "amount": amount, "currency": currency, "armed": True},
    )
    return auto


def auto_top_up_remove(*, customer: Customer) -> None:
    AutoTopUp.objects.filter(customer=customer).delete()


def auto_top_up_fire(*, auto: AutoTopUp, balance: Decimal) -> TopUp | None:
    """Given what the customer has available now: a top-up when it is below the threshold
    and the auto top-up is armed (then disarmed: once per crossing); re-armed once the
    balance is back at or above the threshold. The caller holds `auto` locked."""
    if balance >= auto.threshold:
        if not auto.armed:
            auto.armed = True
            auto.save(update_fields=["armed", "updated_at"])
        return None
    if not auto.armed:
        return None
    top_up, _ = top_up_create(
        customer=auto.customer, amount=auto.amount, currency=auto.currency, auto=True
    )
    auto.armed = False
    auto.save(update_fields=["armed", "updated_at"])
    return top_up
