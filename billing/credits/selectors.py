"""Reading credits: the balances an invoice can draw on, a customer's grants and ledger."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from billing.credits.drawdown import GrantBalance, SourceDraw
from billing.credits.models import CreditEntry, CreditGrant, EntryKind, GrantKind, TopUp
from billing.money import to_minor_units
from billing.plans.models import PlanVersion, Subscription
from billing.plans.schemas import PlanDoc
from billing.plans.selectors import plan_document, plan_version_current, plans_in_effect
from common.lookups import AnyOf  # noqa: F401 -- registers field__any_of

ZERO = Decimal(0)


def _with_balance(grants: QuerySet[CreditGrant]) -> QuerySet[CreditGrant]:
    return grants.annotate(balance=Coalesce(Sum("entries__amount"), ZERO))


def grants_live_in(
    *, customer_ids: list[int], start: datetime, end: datetime
) -> QuerySet[CreditGrant]:
    """The grants an invoice of [start, end) may draw on: in effect at some moment of the
    period (effective before it ends, expiring after it starts), not voided."""
    return CreditGrant.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=start),
        customer_id__any_of=customer_ids,
        effective_at__lt=end,
        voided_at__isnull=True,
    )


@dataclass(frozen=True, slots=True)
class PeriodCredit:
    """A grant the plan gives a customer's period [start, end): its id says which period
    and which of the plan's credits, so that it is made once (services.plan_credits_grant)."""

    external_id: str
    currency: str
    amount: Decimal
    priority: int
    start: datetime
    expires_at: datetime | None  # the period's end, or None when it rolls over
    description: str


def plan_credit_id(start: datetime, position: int) -> str:
    return f"plan:{start.isoformat()}:{position}"


def period_credits(
    *, subscriptions: list[Subscription], start: datetime, end: datetime
) -> dict[int, list[PeriodCredit]]:
    """Per customer, the grants its plan (the one in effect at `start`, at its current
    version, as rating uses) gives the period [start, end)."""
    plan_ids = plans_in_effect(subscriptions=subscriptions, moment=start)
    versions: dict[int, PlanVersion | None] = {
        plan_id: plan_version_current(plan_id=plan_id) for plan_id in set(plan_ids.values())
    }
    return credits_of_versions(
        versions={s.customer_id: versions[plan_ids[s.pk]] for s in subscriptions},
        start=start,
        end=end,
    )


def credits_of_versions(
    *, versions: dict[int, PlanVersion | None], start: datetime, end: datetime
) -> dict[int, list[PeriodCredit]]:
    """Per customer, the grants the plan version it is billed on gives [start, end) (for
    callers that have the versions already: the rating pipeline)."""
    found: dict[int, list[PeriodCredit]] = {}
    documents: dict[int, PlanDoc] = {}
    for customer_id, version in versions.items():
        if version is None or not version.recurring_credits:
            continue
        if version.pk not in documents:
            documents[version.pk] = plan_document(version)
        document = documents[version.pk]
        found[customer_id] = [
            PeriodCredit(
                external_id=plan_credit_id(start, position),
                currency=document.currency,
                amount=credit.amount,
                priority=credit.priority,
                start=start,
                expires_at=None if credit.rollover else end,
                description=credit.description or f"{document.name}: credits of the period",
            )
            for position, credit in enumerate(document.credits)
        ]
    return found


def usable_balances(
    *,
    customer_ids: list[int],
    start: datetime,
    end: datetime,
    planned: dict[int, list[PeriodCredit]] | None = None,
) -> dict[tuple[int, str], list[GrantBalance]]:
    """Per (customer, currency), what each grant live in [start, end) holds: one query,
    whatever the number of customers. `planned`: the grants the customers' plans give the
    period (period_credits); those nobody has made yet count in full, as the close that
    makes them will draw on them."""
    found: dict[tuple[int, str], list[GrantBalance]] = defaultdict(list)
    if not customer_ids:
        return found
    grants = _with_balance(grants_live_in(customer_ids=customer_ids, start=start, end=end))
    for grant in grants.filter(balance__gt=0):
        found[(grant.customer_id, grant.currency)].append(
            GrantBalance(
                grant.pk,
                grant.priority,
                grant.expires_at,
                to_minor_units(grant.balance, grant.currency),
                paid=grant.kind == GrantKind.PAID,
            )
        )
    planned = planned or {}
    made = set(
        CreditGrant.objects.filter(
            customer_id__any_of=list(planned),
            external_id__in={c.external_id for credits in planned.values() for c in credits},
        ).values_list("customer_id", "external_id")
    )
    for customer_id, credits in planned.items():
        for credit in credits:
            if (customer_id, credit.external_id) not in made:
                found[(customer_id, credit.currency)].append(
                    GrantBalance(
                        None,
                        credit.priority,
                        credit.expires_at,
                        to_minor_units(credit.amount, credit.currency),
                    )
                )
    return found


@dataclass(frozen=True, slots=True)
class CreditBalance:
    currency: str
    granted: Decimal  # every grant's grant entry, voided ones included
    available: Decimal  # what grants live now still hold
    drawn: Decimal  # what invoices drew, as a positive amount
    expired: Decimal
    voided: Decimal


def customer_grants(*, customer_id: int) -> QuerySet[CreditGrant]:
    """A customer's grants with their balance, in the order invoices draw on them."""
    return _with_balance(CreditGrant.objects.filter(customer_id=customer_id)).order_by(
        "priority", F("expires_at").asc(nulls_last=True), "pk"
    )


def customer_balances(*, customer_id: int, start: datetime, end: datetime) -> list[CreditBalance]:
    """Per currency: what was granted, what grants live in [start, end) (the customer's
    running period) still hold, and what was drawn, expired and voided."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for currency, kind, amount in (
        CreditEntry.objects.filter(grant__customer_id=customer_id)
        .order_by()
        .values_list("grant__currency", "kind")
        .annotate(amount=Sum("amount"))
    ):
        sums[(currency, kind)] = amount
    available: dict[str, Decimal] = defaultdict(lambda: ZERO)
    live = _with_balance(grants_live_in(customer_ids=[customer_id], start=start, end=end))
    for grant in live:
        available[grant.currency] += grant.balance
    currencies = sorted({currency for currency, _ in sums} | set(available))
    return [
        CreditBalance(
            currency=currency,
            granted=sums[(currency, EntryKind.GRANT)],
            available=available[currency],
            drawn=-sums[(currency, EntryKind.DRAWN)],
            expired=-sums[(currency, EntryKind.EXPIRED)],
            voided=-sums[(currency, EntryKind.VOIDED)],
        )
        for currency in currencies
    ]


def customer_ledger(*, customer_id: int) -> QuerySet[CreditEntry]:
    """A customer's ledger, oldest first."""
    return (
        CreditEntry.objects.filter(grant__customer_id=customer_id)
        .select_related("grant", "invoice")
        .order_by("at", "pk")
    )


def credits_available_now(*, customer_id: int, now: datetime) -> dict[str, Decimal]:
    """Per currency, what the customer's grants live at `now` hold."""
    found: dict[str, Decimal] = defaultdict(lambda: ZERO)
    live = grants_live_in(
        customer_ids=[customer_id], start=now, end=now + timedelta(microseconds=1)
    )
    for grant in _with_balance(live):
        found[grant.currency] += grant.balance
    return found


def credit_liability() -> dict[str, Decimal]:
    """Per currency, what bought credits not used, expired or voided still hold: credits
    customers paid for and payback still owes them."""
    found: dict[str, Decimal] = defaultdict(lambda: ZERO)
    paid = _with_balance(CreditGrant.objects.filter(kind=GrantKind.PAID))
    for currency, balance in paid.values_list("currency", "balance"):
        found[currency] += balance
    return dict(found)


def source_draws(
    *, source_invoice_ids: list[int], start: datetime, end: datetime
) -> dict[int, list[SourceDraw]]:
    """Per earlier invoice, what each grant paid of it (in the order drawn) and what came
    back since, and whether the grant is live in [start, end) (the period now billed):
    three queries, whatever the number of invoices."""
    found: dict[int, list[SourceDraw]] = defaultdict(list)
    if not source_invoice_ids:
        return found
    back: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    for grant_id, source_id, amount in CreditEntry.objects.filter(
        kind=EntryKind.RETURNED, source_invoice__in=source_invoice_ids
    ).values_list("grant_id", "source_invoice_id", "amount"):
        back[(grant_id, source_id)] += amount
    for grant_id, source_id, amount in CreditEntry.objects.filter(
        kind=EntryKind.GRANT,
        source_invoice__in=source_invoice_ids,
        grant__returned_from__isnull=False,
    ).values_list("grant__returned_from_id", "source_invoice_id", "amount"):
        back[(grant_id, source_id)] += amount
    draws = (
        CreditEntry.objects.filter(kind=EntryKind.DRAWN, invoice__in=source_invoice_ids)
        .select_related("grant")
        .order_by("pk")
    )
    for entry in draws:
        grant = entry.grant
        live = (
            grant.voided_at is None
            and grant.effective_at < end
            and (grant.expires_at is None or grant.expires_at > start)
        )
        found[entry.invoice_id].append(  # type: ignore[index]
            SourceDraw(
                grant_id=grant.pk,
                drawn=to_minor_units(-entry.amount, grant.currency),
                returned=to_minor_units(back[(grant.pk, entry.invoice_id)], grant.currency),  # type: ignore[index]
                paid=grant.kind == GrantKind.PAID,
                live=live,
                priority=grant.priority,
                expires_at=grant.expires_at,
            )
        )
    return found


def grants_expiring(*, now: datetime, until: datetime) -> QuerySet[CreditGrant]:
    """Grants with credits left that expire in (now, until], with their balance."""
    return (
        _with_balance(
            CreditGrant.objects.filter(
                expires_at__gt=now, expires_at__lte=until, voided_at__isnull=True
            )
        )
        .filter(balance__gt=0)
        .select_related("customer")
        .order_by("expires_at", "pk")
    )


@dataclass(frozen=True, slots=True)
class LedgerLine:
    entry: CreditEntry
    balance: Decimal  # the customer's balance in the entry's currency after it


def ledger_with_balances(*, customer_id: int) -> dict[str, list[LedgerLine]]:
    """Per currency, the customer's ledger oldest first with the balance after each entry
    (the admin's balance-over-time chart)."""
    found: dict[str, list[LedgerLine]] = defaultdict(list)
    running: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for entry in customer_ledger(customer_id=customer_id):
        currency = entry.grant.currency
        running[currency] += entry.amount
        found[currency].append(LedgerLine(entry, running[currency]))
    return dict(found)


def customer_top_ups(*, customer_id: int) -> QuerySet[TopUp]:
    """A customer's top-ups, newest first, with their grants."""
    return TopUp.objects.filter(customer_id=customer_id).select_related("grant")
