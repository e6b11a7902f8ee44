"""Grants and the ledger: grants made and voided by operators and backends, the plans'
grants of each period, and what a close draws, returns and expires. Every change of a
balance is a ledger entry (billing/credits/models.py)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from api.errors import refusal
from billing.credits.drawdown import CreditReturn, Draw
from billing.credits.models import (
    CreditEntry,
    CreditGrant,
    EntryKind,
    GrantKind,
)
from billing.credits.selectors import PeriodCredit, period_credits
from billing.money import from_minor_units, is_currency, minor_unit_digits
from billing.plans.models import Subscription
from billing.plans.periods import subscription_period
from metering.models import Customer

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """A promotional grant as an operator or a backend asks for it."""

    amount: Decimal
    currency: str
    external_id: str = ""
    priority: int = 100
    effective_at: datetime | None = None  # None: now
    expires_at: datetime | None = None
    description: str = ""


def money_checked(amount: Decimal, currency: str, field: str = "amount") -> None:
    """ApiError unless `currency` is one and `amount` is above 0 in whole minor units of
    it (what a ledger entry, an invoice line and Stripe can all say exactly)."""
    if not is_currency(currency):
        raise refusal("currency", "invalid", f"`{currency}` is not an ISO 4217 currency.")
    if amount <= 0:
        raise refusal(field, "invalid", "Must be above 0.")
    digits = minor_unit_digits(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-digits)):
        raise refusal(
            field, "invalid", f"{currency} has {digits} decimal places: the amount has more."
        )


def grant_checked(request: GrantRequest, now: datetime) -> GrantRequest:
    """The request with its defaults filled in (an id, effective now), or ApiError naming
    the field that cannot be granted."""
    money_checked(request.amount, request.currency)
    effective_at = request.effective_at or now
    if request.expires_at is not None and request.expires_at <= effective_at:
        raise refusal("expires_at", "invalid", "A grant expires after it takes effect.")
    return GrantRequest(
        amount=request.amount,
        currency=request.currency,
        external_id=request.external_id or f"grant_{uuid.uuid4().hex}",
        priority=request.priority,
        effective_at=effective_at,
        expires_at=request.expires_at,
        description=request.description,
    )


def _same(grant: CreditGrant, request: GrantRequest) -> bool:
    return (
        grant.kind == GrantKind.PROMOTIONAL
        and grant.amount == request.amount
        and grant.currency == request.currency
        and grant.priority == request.priority
        and grant.expires_at == request.expires_at
        and grant.description == request.description
        and (request.effective_at is None or grant.effective_at == request.effective_at)
    )


def grant_create(*, customer: Customer, request: GrantRequest) -> tuple[CreditGrant, bool]:
    """Give a customer promotional credits: the grant and its ledger entry, in one
    transaction. The same `external_id` again is the same grant (False) when it says the
    same, and refused (409) when it says otherwise."""
    now = timezone.now()
    if request.external_id:
        found = CreditGrant.objects.filter(
            customer=customer, external_id=request.external_id
        ).first()
        if found is not None:
            if not _same(found, request):
                raise refusal(
                    "id", "conflict", f"Grant `{request.external_id}` exists with other terms.", 409
                )
            return found, False
    checked = grant_checked(request, now)
    assert checked.effective_at is not None
    try:
        return _grant_insert(customer, checked), True
    except IntegrityError:  # the same id, sent twice at once: the other one made it
        return grant_create(customer=customer, request=request)


def _grant_insert(customer: Customer, checked: GrantRequest) -> CreditGrant:
    assert checked.effective_at is not None
    with transaction.atomic():
        grant = CreditGrant.objects.create(
            customer=customer,
            external_id=checked.external_id,
            kind=GrantKind.PROMOTIONAL,
            currency=checked.currency,
            amount=checked.amount,
            priority=checked.priority,
            effective_at=checked.effective_at,
            expires_at=checked.expires_at,
            description=checked.description,
        )
        CreditEntry.objects.create(
            grant=grant, kind=EntryKind.GRANT, amount=grant.amount, at=grant.effective_at
        )
    return grant


def _balance(grant: CreditGrant) -> Decimal:
    return grant.entries.aggregate(total=Coalesce(Sum("amount"), ZERO))["total"]


def grant_void(*, grant_id: int, reason: str) -> CreditGrant:
    """Take back what is left of a grant (what invoices drew stays drawn): a "voided"
    entry of its balance. Voiding a voided grant changes nothing."""
    with transaction.atomic():
        grant = CreditGrant.objects.select_for_update().get(pk=grant_id)
        if grant.voided_at is not None:
            return grant
        now = timezone.now()
        grant.voided_at, grant.void_reason = now, reason
        grant.save(update_fields=["voided_at", "void_reason"])
        left = _balance(grant)
        if left:
            CreditEntry.objects.create(grant=grant, kind=EntryKind.VOIDED, amount=-left, at=now)
    return grant


_PLAN_GRANTS_SQL = """
WITH made AS (
    INSERT INTO credits_creditgrant (customer_id, external_id, kind, currency, amount, priority,
        effective_at, expires_at, description, void_reason, created_at)
    SELECT customer_id, external_id, %(kind)s, currency, amount, priority, effective_at,
           expires_at, description, '', %(now)s
    FROM unnest(%(customers)s::bigint[], %(ids)s::text[], %(currencies)s::text[],
                %(amounts)s::numeric[], %(priorities)s::int[], %(starts)s::timestamptz[],
                %(expiries)s::timestamptz[], %(descriptions)s::text[])
         AS g(customer_id, external_id, currency, amount, priority, effective_at, expires_at,
              description)
    ON CONFLICT (customer_id, external_id) DO NOTHING
    RETURNING id, amount, effective_at
)
INSERT INTO credits_creditentry (grant_id, kind, amount, at, created_at)
SELECT id, %(entry)s, amount, effective_at, %(now)s FROM made
"""


def plan_credits_grant(*, planned: dict[int, list[PeriodCredit]]) -> int:
    """Make the grants customers' plans give a period (selectors.period_credits), each
    with its ledger entry, in one statement; those made already are left as they are, so
    this runs as often as it likes (the job at each period's start, every close).
    Returns how many were made."""
    credits = [(customer_id, c) for customer_id, cs in planned.items() for c in cs]
    if not credits:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _PLAN_GRANTS_SQL,
            {
                "kind": GrantKind.RECURRING,
                "entry": EntryKind.GRANT,
                "now": timezone.now(),
                "customers": [customer_id for customer_id, _ in credits],
                "ids": [c.external_id for _, c in credits],
                "currencies": [c.currency for _, c in credits],
                "amounts": [c.amount for _, c in credits],
                "priorities": [c.priority for _, c in credits],
                "starts": [c.start for _, c in credits],
                "expiries": [c.expires_at for _, c in credits],
                "descriptions": [c.description for _, c in credits],
            },
        )
        return cursor.rowcount


def plan_credits_grant_running(*, now: datetime) -> int:
    """Make the grants the plans give each subscription's period running at `now` (the
    beat, every few minutes: a grant is effective at its period's start however late this
    runs, and a close makes any it missed). Returns how many were made."""
    by_period: dict[tuple[datetime, datetime], list[Subscription]] = defaultdict(list)
    for subscription in Subscription.objects.filter(started_at__lte=now):
        period = subscription_period(
            now,
            started_at=subscription.started_at,
            anchor_day=subscription.billing_anchor_day,
            timezone=subscription.timezone,
        )
        by_period[period].append(subscription)
    return sum(
        plan_credits_grant(planned=period_credits(subscriptions=members, start=start, end=end))
        for (start, end), members in by_period.items()
    )


def grants_lock(*, customer_ids: Sequence[int]) -> None:
    """Lock these customers' grants until the transaction ends: a close draws on them, so
    no void or other close may change their balances meanwhile."""
    list(
        CreditGrant.objects.select_for_update()
        .filter(customer_id__in=customer_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def draws_record(*, draws: Sequence[tuple[int, str, Draw]], at: datetime) -> None:
    """The ledger entries of a close's draws: (invoice id, currency, draw) each, dated the
    period's end (the grants are locked: grants_lock)."""
    assert all(draw.grant_id is not None for _, _, draw in draws), "a close makes its grants"
    CreditEntry.objects.bulk_create(
        [
            CreditEntry(
                grant_id=draw.grant_id,
                kind=EntryKind.DRAWN,
                amount=-from_minor_units(draw.amount, currency),
                invoice_id=invoice_id,
                at=at,
            )
            for invoice_id, currency, draw in draws
        ]
    )


def returns_record(*, returns: Sequence[tuple[int, str, CreditReturn]], at: datetime) -> None:
    """The ledger of a close's returns: (invoice id, currency, return) each. To a grant
    live in the period, a "returned" entry; to one that is not (expired or voided since),
    a new promotional grant effective at `at` (the period's end), whose grant entry names
    the period the credits had paid. Dated `at`, written before the close's draws."""
    entries = []
    for invoice_id, currency, back in returns:
        amount = from_minor_units(back.amount, currency)
        if back.live:
            entries.append(
                CreditEntry(
                    grant_id=back.grant_id,
                    kind=EntryKind.RETURNED,
                    amount=amount,
                    invoice_id=invoice_id,
                    source_invoice_id=back.source_invoice_id,
                    at=at,
                )
            )
            continue
        original = CreditGrant.objects.get(pk=back.grant_id)
        grant = CreditGrant.objects.create(
            customer_id=original.customer_id,
            external_id=f"return:{invoice_id}:{original.pk}",
            kind=GrantKind.PROMOTIONAL,
            currency=currency,
            amount=amount,
            priority=original.priority,
            effective_at=at,
            returned_from=original,
            description=f"Credits returned from {original.external_id}",
        )
        entries.append(
            CreditEntry(
                grant=grant,
                kind=EntryKind.GRANT,
                amount=amount,
                source_invoice_id=back.source_invoice_id,
                at=at,
            )
        )
    CreditEntry.objects.bulk_create(entries)


def grants_expire(*, customer_ids: Sequence[int], through: datetime) -> int:
    """After a close has drawn on them: what is left of these customers' grants expiring
    by `through` (the period's end) expires, dated its expiry; once per grant. Returns how
    many grants expired something."""
    expiring = (
        CreditGrant.objects.filter(
            customer_id__in=customer_ids, expires_at__lte=through, voided_at__isnull=True
        )
        .exclude(entries__kind=EntryKind.EXPIRED)
        .annotate(balance=Coalesce(Sum("entries__amount"), ZERO))
        .filter(~Q(balance=0))
    )
    entries = [
        CreditEntry(grant=grant, kind=EntryKind.EXPIRED, amount=-grant.balance, at=grant.expires_at)
        for grant in expiring
    ]
    CreditEntry.objects.bulk_create(entries)
    return len(entries)
