"""Reads of plans and subscriptions: the terms a customer is billed on, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef
from django.http import Http404
from django.utils import timezone as django_timezone

from billing.plans.models import (
    Plan,
    PlanChange,
    PlanVersion,
    PriceModel,
    PriceTier,
    SeatChange,
    Subscription,
    TierMode,
)
from billing.plans.periods import subscription_period
from billing.plans.pricing import OutcomeTerms, PlanTerms, Tier
from billing.plans.schemas import (
    DimensionMarkupDoc,
    DimensionPriceDoc,
    OutcomePriceDoc,
    PassThroughDoc,
    PlanDoc,
    RecurringCreditDoc,
    TierDoc,
)
from common.lookups import AnyOf  # noqa: F401 -- registers field__any_of
from metering.models import Customer

DEFAULT_REVERSAL_WINDOW = timedelta(days=7)


def subscription_of(*, customer: Customer) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(customer=customer).first()


def plan_version_current(*, plan_id: int) -> PlanVersion | None:
    """The newest version of a plan: the one its customers are billed on."""
    return (
        PlanVersion.objects.filter(plan_id=plan_id)
        .select_related("plan")
        .prefetch_related("outcome_prices__tiers", "pass_throughs")
        .order_by("-version")
        .first()
    )


def plan_get(*, code: str) -> Plan:
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        raise Http404(f"No plan `{code}`.")
    return plan


def plan_versions(*, plan: Plan) -> list[PlanVersion]:
    """The plan's versions, newest first, with their prices and whether an invoice used
    them (`billed`)."""
    return list(
        PlanVersion.objects.filter(plan=plan)
        .select_related("plan")
        .prefetch_related("outcome_prices__tiers", "pass_throughs")
        .annotate(
            billed=Exists(PlanVersion.objects.filter(pk=OuterRef("pk"), invoices__isnull=False))
        )
        .order_by("-version")
    )


def tier_doc(tier: PriceTier) -> TierDoc:
    """A stored tier as a plan document writes it."""
    return TierDoc(
        unit_price=tier.unit_price,
        up_to=tier.up_to,
        flat_fee=tier.flat_fee,
        percentage=tier.percentage,
    )


def plan_document(version: PlanVersion) -> PlanDoc:
    """A stored plan version as a document: what GET /v1/plans shows, and what a loaded
    document is compared with to tell whether it changes anything."""
    return PlanDoc(
        code=version.plan.code,
        name=version.plan.name,
        currency=version.currency,
        base_fee=version.base_fee,
        minimum_spend=version.minimum_spend,
        premium_seat_fee=version.premium_seat_fee,
        seat_mode=version.seat_mode,  # type: ignore[arg-type]
        reversal_window_days=version.reversal_window_days,
        collection_method=version.collection_method,  # type: ignore[arg-type]
        days_until_due=version.days_until_due,
        outcomes=[
            OutcomePriceDoc(
                type=price.outcome_type,
                unit_price=price.unit_price,
                percentage=price.percentage,
                floor=price.floor,
                cap=price.cap,
                fixed_fee=price.fixed_fee,
                free_value=price.free_value,
                included=price.included_quantity,
                tier_mode=None if price.tier_mode == TierMode.NONE else price.tier_mode,  # type: ignore[arg-type]
                tiers=[tier_doc(tier) for tier in price.tiers.all()] or None,
                package_size=price.package_size,
                dimension=price.dimension or None,
                prices=[
                    DimensionPriceDoc(value=group["value"], unit_price=Decimal(group["unit_price"]))
                    for group in price.dimension_prices
                ]
                or None,
            )
            for price in version.outcome_prices.all()
        ],
        token_pass_through=[
            PassThroughDoc(
                markup=p.markup,
                feature=p.feature,
                dimension=p.dimension or None,  # type: ignore[arg-type]
                markups=[
                    DimensionMarkupDoc(value=group["value"], markup=Decimal(group["markup"]))
                    for group in p.dimension_markups
                ]
                or None,
            )
            for p in version.pass_throughs.all()
        ],
        included_features=list(version.included_features),
        premium_target_margin_percent=version.premium_target_margin_percent,
        credits=[
            RecurringCreditDoc(
                amount=Decimal(credit["amount"]),
                priority=credit["priority"],
                rollover=credit["rollover"],
                description=credit["description"],
            )
            for credit in version.recurring_credits
        ],
    )


def price_model(price: OutcomePriceDoc) -> str:
    """PERCENTAGE for a percentage of the value, flat or graduated (tiers of percentages);
    UNIT for a price per outcome."""
    by_value = price.percentage is not None or any(
        tier.percentage is not None for tier in price.tiers or ()
    )
    return PriceModel.PERCENTAGE if by_value else PriceModel.UNIT


def plan_terms(*, version: PlanVersion) -> PlanTerms:
    """What rating needs of a plan version, read through its document (one mapping from
    the tables, in plan_document)."""
    doc = plan_document(version)
    return PlanTerms(
        code=doc.code,
        version=version.version,
        currency=doc.currency,
        base_fee=doc.base_fee,
        minimum_spend=doc.minimum_spend,
        premium_seat_fee=doc.premium_seat_fee,
        seat_mode=doc.seat_mode,
        reversal_window_days=doc.reversal_window_days,
        outcomes=tuple(
            OutcomeTerms(
                outcome_type=price.type,
                model=price_model(price),
                unit_price=price.unit_price,
                percentage=price.percentage,
                floor=price.floor,
                cap=price.cap,
                fixed_fee=price.fixed_fee,
                free_value=price.free_value,
                included_quantity=price.included,
                tier_mode=price.tier_mode or TierMode.NONE,
                tiers=tuple(
                    Tier(t.up_to, t.unit_price, t.flat_fee, t.percentage) for t in price.tiers or ()
                ),
                package_size=price.package_size,
                dimension=price.dimension or "",
                dimension_prices=tuple(
                    (group.value, group.unit_price) for group in price.prices or ()
                ),
            )
            for price in sorted(doc.outcomes, key=lambda price: price.type)
        ),
        pass_through={p.feature: p.markup for p in doc.token_pass_through},
        pass_through_by={
            p.feature: (p.dimension, tuple((group.value, group.markup) for group in p.markups))
            for p in doc.token_pass_through
            if p.dimension is not None and p.markups
        },
        included_features=tuple(sorted(doc.included_features)),
    )


def plan_in_effect(*, subscription: Subscription, moment: datetime) -> int:
    """The id of the plan the subscription is billed on at `moment`."""
    change = (
        PlanChange.objects.filter(subscription=subscription, effective_from__lte=moment)
        .order_by("-effective_from")
        .values_list("plan_id", flat=True)
        .first()
    )
    return change if change is not None else subscription.plan_id


def plan_change_pending(*, subscription: Subscription, now: datetime) -> PlanChange | None:
    return (
        PlanChange.objects.filter(subscription=subscription, effective_from__gt=now)
        .select_related("plan")
        .order_by("effective_from")
        .first()
    )


def seats_at(*, subscription: Subscription, moment: datetime) -> int:
    """Fixed premium seats in effect at `moment`."""
    change = (
        SeatChange.objects.filter(subscription=subscription, effective_at__lte=moment)
        .order_by("-effective_at", "-pk")
        .values_list("seats", flat=True)
        .first()
    )
    return change if change is not None else subscription.premium_seats


@dataclass(frozen=True, slots=True)
class FixedSeats:
    seats: int  # in effect at the end of the period
    # Set when the seats changed during the period: seats × days, a change counting from
    # the day it was made (in the customer's timezone), and the period's days.
    seat_days: int | None
    period_days: int


def fixed_seats_many(
    *, subscriptions: list[Subscription], start: datetime, end: datetime
) -> dict[int, FixedSeats]:
    """Each subscription's fixed seats over [start, end), prorated by day when they changed
    within it: one query for all the subscriptions' seat changes."""
    changes: dict[int, list[tuple[datetime, int]]] = {s.pk: [] for s in subscriptions}
    for subscription_id, effective_at, seats in (
        SeatChange.objects.filter(
            subscription_id__any_of=[s.pk for s in subscriptions], effective_at__lt=end
        )
        .order_by("effective_at", "pk")
        .values_list("subscription_id", "effective_at", "seats")
    ):
        changes[subscription_id].append((effective_at, seats))
    return {
        subscription.pk: _prorate(subscription, changes[subscription.pk], start, end)
        for subscription in subscriptions
    }


def _prorate(
    subscription: Subscription,
    changes: list[tuple[datetime, int]],
    start: datetime,
    end: datetime,
) -> FixedSeats:
    zone = ZoneInfo(subscription.timezone)
    first_day, last_day = start.astimezone(zone).date(), end.astimezone(zone).date()
    period_days = (last_day - first_day).days
    seats = subscription.premium_seats
    for effective_at, new_seats in changes:
        if effective_at <= start:
            seats = new_seats
    within = [(at, new_seats) for at, new_seats in changes if at > start]
    if not within:
        return FixedSeats(seats, None, period_days)
    seat_days, day = 0, first_day
    for effective_at, new_seats in within:
        change_day = min(effective_at.astimezone(zone).date(), last_day)
        seat_days += seats * (change_day - day).days
        day, seats = max(day, change_day), new_seats
    seat_days += seats * (last_day - day).days
    return FixedSeats(seats, seat_days, period_days)


def plans_in_effect(*, subscriptions: list[Subscription], moment: datetime) -> dict[int, int]:
    """Subscription id -> the id of the plan it is billed on at `moment`: one query."""
    return plan_ids_in_effect(
        plans={subscription.pk: subscription.plan_id for subscription in subscriptions},
        moment=moment,
    )


def plan_ids_in_effect(
    *, plans: dict[int, int], moment: datetime, every: bool = False
) -> dict[int, int]:
    """The same from subscription id -> its plan id (thousands of subscriptions need no
    more of each): one query. `every`: `plans` holds every subscription (the changes are
    read without naming ten thousand of them)."""
    plans = dict(plans)
    changes = PlanChange.objects.filter(effective_from__lte=moment)
    for subscription_id, plan_id in (
        (changes if every else changes.filter(subscription_id__any_of=list(plans)))
        .order_by("effective_from")
        .values_list("subscription_id", "plan_id")
    ):
        plans[subscription_id] = plan_id  # the latest change wins
    return plans


def customer_plan_terms(
    *, customer: Customer, moment: datetime | None = None
) -> tuple[Subscription | None, PlanTerms | None]:
    """The customer's subscription and the terms of the plan in effect at `moment`
    (default now)."""
    subscription = subscription_of(customer=customer)
    if subscription is None:
        return None, None
    plan_id = plan_in_effect(subscription=subscription, moment=moment or django_timezone.now())
    version = plan_version_current(plan_id=plan_id)
    return subscription, (plan_terms(version=version) if version else None)


def customer_period(*, customer: Customer, moment: datetime) -> tuple[datetime, datetime] | None:
    """The customer's billing period [start, end) that holds `moment`; None without a
    subscription or before it started."""
    subscription = subscription_of(customer=customer)
    return None if subscription is None else period_of(subscription=subscription, moment=moment)


def period_of(*, subscription: Subscription, moment: datetime) -> tuple[datetime, datetime] | None:
    """The subscription's billing period [start, end) that holds `moment`; None before it
    started."""
    if moment < subscription.started_at:
        return None
    return subscription_period(
        moment,
        started_at=subscription.started_at,
        anchor_day=subscription.billing_anchor_day,
        timezone=subscription.timezone,
    )


def reversal_window(*, customer: Customer) -> timedelta:
    """How long after its success an outcome of this customer may be reversed."""
    _, terms = customer_plan_terms(customer=customer)
    return timedelta(days=terms.reversal_window_days) if terms else DEFAULT_REVERSAL_WINDOW
