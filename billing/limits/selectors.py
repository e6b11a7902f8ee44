"""What a customer has available to spend now, and its reservations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from billing.invoicing.selectors import invoice_preview
from billing.invoicing.selectors.running import running_seat_cost
from billing.limits.models import (
    FairUseCap,
    LimitMode,
    Reservation,
    ReservationStatus,
    SpendLimit,
)
from billing.money import from_minor_units
from billing.plans.models import LineKind, PriceModel
from billing.plans.pricing import OutcomeQuantity, PeriodQuantities, PlanTerms, rate_period
from metering.models import Customer

ZERO = Decimal(0)
# What credits paid of an invoice: not what it bills. (What goes back to credits is
# billed: its credit line is offset on the invoice and the credits hold it instead.)
CREDIT_LINES = (LineKind.CREDITS_APPLIED, LineKind.PREPAID_APPLIED)


@dataclass(frozen=True, slots=True)
class SeatUse:
    """A premium seat (an end user) in the running period: what its AI has cost so far
    (USD, priced calls) and its plan's fair-use cap (None: none computed, or none
    needed)."""

    user: str
    cost: Decimal
    plan_cap: Decimal | None


@dataclass(frozen=True, slots=True)
class Available:
    """What a customer may still spend in its running period, in its plan's currency:
    the credits live in it, less what its usage so far bills (as its invoice would,
    before credits) and what open reservations hold; and its budgets for the period."""

    currency: str
    period_start: datetime
    period_end: datetime
    credits: Decimal
    billed: Decimal
    reserved: Decimal
    cost: Decimal  # USD: what the period's AI has cost so far (priced calls)
    limit: SpendLimit
    seat: SeatUse | None = None  # the premium seat asked about, if any

    @property
    def seat_cap(self) -> Decimal | None:
        """USD: what the seat may cost this period: the limit's own cap, else its plan's."""
        if self.seat is None:
            return None
        if self.limit.seat_cost_cap is not None:
            return self.limit.seat_cost_cap
        return self.seat.plan_cap

    @property
    def amount(self) -> Decimal:
        return self.credits - self.billed - self.reserved

    @property
    def budget_left(self) -> Decimal | None:
        budget = self.limit.budget
        return None if budget is None else budget - self.billed - self.reserved

    def exceeded_by(self, amount: Decimal) -> list[str]:
        """What `amount` more would exceed: "credits", "budget", "cost_budget" (the
        period's AI cost has reached it: nothing more fits), "fair_use" (the premium seat
        asked about has cost its cap this period, under a limit that checks fair use)."""
        over = []
        if self.limit.credits and amount > self.amount:
            over.append("credits")
        left = self.budget_left
        if left is not None and amount > left:
            over.append("budget")
        if self.limit.cost_budget is not None and self.cost >= self.limit.cost_budget:
            over.append("cost_budget")
        cap = self.seat_cap
        if self.limit.fair_use and self.seat is not None and cap is not None:
            if self.seat.cost >= cap:  # this seat has cost its cap: nothing more fits
                over.append("fair_use")
        return over


class NoPlan(Exception):
    """A customer without a subscription has no period, currency or prices to spend in."""


@dataclass(frozen=True, slots=True)
class RunningPeriod:
    """The customer's running period as its invoice would bill it now, before credits."""

    currency: str
    start: datetime
    end: datetime
    billed: Decimal
    credits: Decimal
    cost: Decimal  # USD
    quantities: PeriodQuantities
    terms: PlanTerms


def running_period(*, customer: Customer, now: datetime) -> RunningPeriod:
    """The running period rated now through the close's own pipeline (the preview)."""
    preview = invoice_preview(customer=customer, moment=now)
    if preview is None or preview.period is None:
        raise NoPlan(customer.external_id)
    period = preview.period
    assert period.quantities is not None, "a rated period keeps its quantities"
    currency = period.invoice.currency
    billed = sum(line.amount for line in period.invoice.lines if line.kind not in CREDIT_LINES)
    return RunningPeriod(
        currency=currency,
        start=preview.start,
        end=preview.end,
        billed=from_minor_units(billed, currency),
        # Read by the same rating, with what comes back to credits this period.
        credits=from_minor_units(period.credit_balance, currency),
        cost=period.inference_cost,
        quantities=period.quantities,
        terms=period.terms,
    )


def reserved(*, customer_id: int) -> Decimal:
    """What the customer's open reservations hold."""
    return (
        Reservation.objects.filter(
            customer_id=customer_id, status=ReservationStatus.OPEN
        ).aggregate(total=Sum("amount"))["total"]
        or ZERO
    )


def spend_limit(*, customer_id: int) -> SpendLimit:
    """The customer's limit; without one, `none` (every authorization allowed)."""
    found = SpendLimit.objects.filter(customer_id=customer_id).first()
    return found or SpendLimit(customer_id=customer_id, mode=LimitMode.NONE)


def seat_use(*, customer_id: int, user: str, running: RunningPeriod) -> SeatUse:
    """The premium seat `user` of the customer in its running period (its cost read from
    the running rollup) and its plan's fair-use cap."""
    cap = FairUseCap.objects.filter(plan__code=running.terms.code).values_list("cap", flat=True)
    return SeatUse(
        user=user,
        cost=running_seat_cost(
            customer_id=customer_id, user=user, start=running.start, end=running.end
        ),
        plan_cap=next(iter(cap), None),
    )


def available_of(
    running: RunningPeriod, *, held: Decimal, limit: SpendLimit, seat: SeatUse | None = None
) -> Available:
    return Available(
        currency=running.currency,
        period_start=running.start,
        period_end=running.end,
        credits=running.credits,
        billed=running.billed,
        reserved=held,
        cost=running.cost,
        limit=limit,
        seat=seat,
    )


def available(*, customer: Customer, now: datetime, user: str = "") -> Available:
    """What the customer has available now; with `user`, that premium seat's use too."""
    running = running_period(customer=customer, now=now)
    return available_of(
        running,
        held=reserved(customer_id=customer.pk),
        limit=spend_limit(customer_id=customer.pk),
        seat=seat_use(customer_id=customer.pk, user=user, running=running) if user else None,
    )


def outcome_price(running: RunningPeriod, outcome_type: str, quantity: int) -> Decimal | None:
    """What `quantity` more successes of `outcome_type` add to the running period's
    invoice at the plan's prices (its tiers, packages, included quantity and minimum as
    they stand now: rated with and without them), by a property of the outcome at its
    dearest price; None when the plan prices the type by value (a percentage: the backend
    says an amount instead)."""
    terms = running.terms
    outcome = next((o for o in terms.outcomes if o.outcome_type == outcome_type), None)
    if outcome is None:
        return ZERO  # the plan does not bill that type
    if outcome.model == PriceModel.PERCENTAGE:
        return None
    now = running.quantities
    so_far = now.outcomes.get(outcome_type, OutcomeQuantity(0))
    added_to = OutcomeQuantity(so_far.succeeded + quantity)
    if outcome.dimension:
        # Which value the new outcomes will have is not known: they are priced at the
        # dearest (the reservation holds the most they could bill). Past the included
        # ones only: those come first, whatever their value.
        assert outcome.unit_price is not None, "a price by dimension has a default"
        dearest = max(
            (*outcome.dimension_prices, ("", outcome.unit_price)), key=lambda group: group[1]
        )[0]
        billable = max(added_to.succeeded - outcome.included_quantity, 0)
        counts = dict(so_far.by_value)
        counts[dearest] = counts.get(dearest, 0) + billable - sum(counts.values())
        added_to = replace(added_to, by_value=tuple(sorted(counts.items())))
    more = replace(now, outcomes={**now.outcomes, outcome_type: added_to})
    added = rate_period(terms, more).total - rate_period(terms, now).total
    return from_minor_units(added, running.currency)


def customers_spending() -> QuerySet[Customer]:
    """Customers with credits or a spend limit: those whose spending alerts watch."""
    return Customer.objects.filter(
        Q(credit_grants__isnull=False) | Q(spend_limit__isnull=False)
    ).distinct()
