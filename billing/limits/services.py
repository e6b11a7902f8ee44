"""Authorizing spend: an amount reserved against what a customer has available, with no
overspend however many authorizations run at once, and its settle, release and expiry."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils.module_loading import import_string

from api.errors import refusal
from billing.credits.models import AutoTopUp
from billing.credits.selectors import credits_available_now
from billing.credits.services import auto_top_up_fire
from billing.limits import selectors
from billing.limits.models import (
    FairUseCap,
    LimitMode,
    Reservation,
    ReservationStatus,
    SpendLimit,
)
from billing.plans.models import Plan
from metering.models import Customer

# pg_advisory_xact_lock(key1, key2): key1 names what is locked (a customer's spend), key2
# the customer. Authorizations of one customer queue on it, in every process.
SPEND_LOCK = 0x7370656E  # "spen"


@dataclass(frozen=True, slots=True)
class SpendRequest:
    """What a backend is about to do: an amount, or outcomes priced at the plan's price."""

    external_id: str = ""
    amount: Decimal | None = None
    outcome_type: str = ""
    quantity: int | None = None
    ttl: timedelta = timedelta(minutes=10)
    user: str = ""  # the premium seat (end user) it serves, for the fair-use check


@dataclass(frozen=True, slots=True)
class Authorization:
    allowed: bool
    reservation: Reservation | None  # None when refused
    amount: Decimal  # what was asked, priced
    available: selectors.Available  # after the reservation, when allowed
    exceeds: list[str]  # what it exceeds (a soft limit allows it anyway): see exceeded_by


def _priced(running: selectors.RunningPeriod, request: SpendRequest) -> Decimal:
    if request.amount is not None:
        if request.amount <= 0:
            raise refusal("amount", "invalid", "An amount above 0.")
        return request.amount
    if not request.outcome_type or not request.quantity:
        raise refusal("amount", "required", "Say an amount, or an outcome_type and a quantity.")
    price = selectors.outcome_price(running, request.outcome_type, request.quantity)
    if price is None:
        raise refusal(
            "outcome_type",
            "priced_by_value",
            f"`{request.outcome_type}` is priced by its value: say the amount.",
        )
    return price


def authorize(*, customer: Customer, request: SpendRequest, now: datetime) -> Authorization:
    """Reserve what `request` costs if the customer's limit allows it. Under a hard limit
    it must fit in what is available; under a soft one it is allowed and said to exceed;
    with none it is allowed. One customer's authorizations are serialised by a lock, so
    that concurrent ones never reserve more than was available between them. The same
    `external_id` again answers with the reservation it made."""
    if request.external_id:
        found = Reservation.objects.filter(
            customer=customer, external_id=request.external_id
        ).first()
        if found is not None:
            return _again(found, customer, now)
    try:
        running = selectors.running_period(customer=customer, now=now)
    except selectors.NoPlan:
        raise refusal(
            None, "no_plan", f"Customer `{customer.external_id}` has no plan to spend in.", 409
        ) from None
    amount = _priced(running, request)
    seat = (
        selectors.seat_use(customer_id=customer.pk, user=request.user, running=running)
        if request.user
        else None
    )
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SPEND_LOCK, customer.pk])
            held = selectors.reserved(customer_id=customer.pk)
            limit = selectors.spend_limit(customer_id=customer.pk)
            before = selectors.available_of(running, held=held, limit=limit, seat=seat)
            exceeds = before.exceeded_by(amount)
            if exceeds and limit.mode == LimitMode.HARD:
                return Authorization(False, None, amount, before, exceeds)
            reservation = Reservation.objects.create(
                public_id=f"res_{uuid.uuid4().hex}",
                customer=customer,
                external_id=request.external_id or f"auth_{uuid.uuid4().hex}",
                currency=running.currency,
                amount=amount,
                outcome_type=request.outcome_type,
                quantity=request.quantity,
                expires_at=now + request.ttl,
            )
    except IntegrityError:
        if not request.external_id:
            raise
        # The same id, sent twice at once: the other one made it.
        found = Reservation.objects.get(customer=customer, external_id=request.external_id)
        return _again(found, customer, now)
    after = selectors.available_of(running, held=held + amount, limit=limit, seat=seat)
    return Authorization(True, reservation, amount, after, exceeds)


def _again(found: Reservation, customer: Customer, now: datetime) -> Authorization:
    available = selectors.available(customer=customer, now=now)
    return Authorization(True, found, found.amount, available, available.exceeded_by(0))


def _open(public_id: str) -> Reservation:
    """The reservation, locked; 404 when there is none, 409 when it is not open."""
    reservation = Reservation.objects.select_for_update().filter(public_id=public_id).first()
    if reservation is None:
        raise refusal(None, "not_found", f"No reservation `{public_id}`.", 404)
    return reservation


def reservation_settle(*, public_id: str, amount: Decimal, now: datetime) -> Reservation:
    """What the reserved work actually cost: the reservation stops holding (the usage,
    once recorded, counts in what the period bills). Settling again with the same amount
    changes nothing; anything else on a reservation that is not open is a 409."""
    if amount < 0:
        raise refusal("amount", "invalid", "An amount of 0 or more.")
    with transaction.atomic():
        reservation = _open(public_id)
        if reservation.status == ReservationStatus.SETTLED and reservation.settled_amount == amount:
            return reservation
        if reservation.status != ReservationStatus.OPEN:
            raise refusal(
                None, "not_open", f"Reservation `{public_id}` is {reservation.status}.", 409
            )
        reservation.status = ReservationStatus.SETTLED
        reservation.settled_amount, reservation.ended_at = amount, now
        reservation.save(update_fields=["status", "settled_amount", "ended_at"])
    return reservation


def reservation_release(*, public_id: str, now: datetime) -> Reservation:
    """The reserved work did not happen: the reservation stops holding. Releasing again
    changes nothing."""
    with transaction.atomic():
        reservation = _open(public_id)
        if reservation.status == ReservationStatus.RELEASED:
            return reservation
        if reservation.status != ReservationStatus.OPEN:
            raise refusal(
                None, "not_open", f"Reservation `{public_id}` is {reservation.status}.", 409
            )
        reservation.status, reservation.ended_at = ReservationStatus.RELEASED, now
        reservation.save(update_fields=["status", "ended_at"])
    return reservation


def reservations_expire(*, now: datetime) -> int:
    """Open reservations past their time stop holding (a backend that died between
    reserve and settle): each once, whenever this runs. Returns how many expired."""
    return Reservation.objects.filter(status=ReservationStatus.OPEN, expires_at__lte=now).update(
        status=ReservationStatus.EXPIRED, ended_at=now
    )


def spend_limit_set(
    *,
    customer: Customer,
    mode: str,
    credits: bool = True,
    budget: Decimal | None = None,
    cost_budget: Decimal | None = None,
    fair_use: bool = False,
    seat_cost_cap: Decimal | None = None,
) -> SpendLimit:
    for field, value in (
        ("budget", budget),
        ("cost_budget", cost_budget),
        ("seat_cost_cap", seat_cost_cap),
    ):
        if value is not None and value < 0:
            raise refusal(field, "invalid", "A budget of 0 or more.")
    limit, _ = SpendLimit.objects.update_or_create(
        customer=customer,
        defaults={
            "mode": mode,
            "credits": credits,
            "budget": budget,
            "cost_budget": cost_budget,
            "fair_use": fair_use,
            "seat_cost_cap": seat_cost_cap,
        },
    )
    return limit


def fair_use_caps_compute(*, now: datetime) -> int:
    """Each plan's fair-use cap per premium seat over the last whole UTC month before
    `now`, as the premium break-even report computes it (settings.LIMITS_FAIR_USE_CAPS),
    stored for authorizations to check. Returns how many plans have one."""
    this_month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    caps = import_string(settings.LIMITS_FAIR_USE_CAPS)(start=last_month, end=this_month)
    plans = {plan.code: plan for plan in Plan.objects.filter(code__in=caps)}
    for code, cap in caps.items():
        FairUseCap.objects.update_or_create(
            plan=plans[code],
            defaults={
                "cap": cap,
                "window_start": last_month,
                "window_end": this_month,
                "computed_at": now,
            },
        )
    return len(caps)


def auto_top_ups_check(*, now: datetime) -> int:
    """Each auto top-up against what its customer has available now (credits less what
    the running period bills and reservations hold; credits live now without a plan):
    a top-up when it fell below the threshold, once per crossing. Returns how many."""
    made = 0
    for auto_id in AutoTopUp.objects.values_list("pk", flat=True):
        with transaction.atomic():
            auto = (
                AutoTopUp.objects.select_for_update(skip_locked=True)
                .select_related("customer")
                .filter(pk=auto_id)
                .first()
            )
            if auto is None:
                continue  # another run has it
            try:
                balance = selectors.available(customer=auto.customer, now=now).amount
            except selectors.NoPlan:
                balance = credits_available_now(customer_id=auto.customer_id, now=now).get(
                    auto.currency, Decimal(0)
                )
            made += auto_top_up_fire(auto=auto, balance=balance) is not None
    return made


def reservations_settle_by_usage(*, reserved: Collection[tuple[int, str]], now: datetime) -> int:
    """Usage naming reservations arrived ((customer id, reservation id) pairs: events or
    outcomes just stored): the open ones among them stop holding, the usage counting in
    what their period bills now. Settled by usage, without an amount; once each, and
    only the customer's own. Returns how many were settled."""
    pairs = set(reserved)
    if not pairs:
        return 0
    matches = Q()
    for customer_id, public_id in pairs:
        matches |= Q(customer_id=customer_id, public_id=public_id)
    return Reservation.objects.filter(matches, status=ReservationStatus.OPEN).update(
        status=ReservationStatus.SETTLED, ended_at=now
    )
