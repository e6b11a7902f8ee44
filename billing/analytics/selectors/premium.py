"""Premium break-even: does the seat fee of a premium tier cover the AI its users burn?

A premium seat is an end user with `tier: "premium"` calls in the window; its AI cost is
the cost of those calls (USD), read from the running rollup (the seats' days that are
over) and the calls of the rest (billing/invoicing/selectors/running.py). Per plan with a
premium seat fee: the distribution of that cost over seats (median, p90, max;
percentiles interpolated linearly between ranks, as PostgreSQL's percentile_cont), how
many seats cost more than the fee, and the fair-use cap: the largest cost per seat such
that, were every seat capped there, the tier would keep the plan's target margin
(premium_target_margin_percent of the seat fees).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from itertools import accumulate

from billing.invoicing.fx import fx_convert
from billing.invoicing.selectors.running import running_seat_costs
from billing.money import margin_of_revenue
from billing.plans.models import Subscription
from billing.plans.selectors import plan_ids_in_effect, plan_version_current

ZERO = Decimal(0)
EXACT = Decimal("1e-12")


def percentile(values: list[Decimal], q: Decimal) -> Decimal:
    """The q-quantile (0..1) of sorted `values`, interpolated between ranks."""
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def fair_use_cap(costs: list[Decimal], allowed: Decimal) -> Decimal | None:
    """The largest c with sum(min(cost, c)) <= `allowed` (rounded down to 1e-12); None
    when the costs stay within `allowed` uncapped. `costs` sorted ascending."""
    prefix = list(accumulate(costs, initial=ZERO))  # prefix[i]: the i cheapest seats' cost
    seats = len(costs)
    if prefix[-1] <= allowed:
        return None

    def capped_from(below: int) -> bool:
        # Seats 0..below-1 keep their cost and the rest share what is left: is their
        # share at most the cost of seat `below`? (Multiplied out: exact.) False, then
        # true from some seat on, as the costs ascend; true at the last seat, since the
        # sum exceeds `allowed`.
        return allowed - prefix[below] <= costs[below] * (seats - below)

    below = bisect_left(range(seats), True, key=capped_from)
    cap = (allowed - prefix[below]) / (seats - below)
    return max(cap, ZERO).quantize(EXACT, rounding=ROUND_DOWN)


@dataclass(frozen=True, slots=True)
class PremiumBreakEven:
    plan: str
    currency: str  # of the seat fee
    seat_fee: Decimal
    seat_fee_usd: Decimal | None  # None: no FX rate for the plan's currency
    target_margin_percent: Decimal
    costs: list[Decimal]  # USD per seat, ascending
    fair_use_cap: Decimal | None  # USD per seat; None: no cap needed (or no rate)

    @property
    def seats(self) -> int:
        return len(self.costs)

    @property
    def median(self) -> Decimal | None:
        return percentile(self.costs, Decimal("0.5")) if self.costs else None

    @property
    def p90(self) -> Decimal | None:
        return percentile(self.costs, Decimal("0.9")) if self.costs else None

    @property
    def max(self) -> Decimal | None:
        return self.costs[-1] if self.costs else None

    @property
    def seats_over_fee(self) -> int | None:
        if self.seat_fee_usd is None:
            return None
        return len(self.costs) - bisect_right(self.costs, self.seat_fee_usd)

    @property
    def share_over_fee(self) -> Decimal | None:
        over = self.seats_over_fee
        if over is None or not self.costs:
            return None
        return (Decimal(over) / len(self.costs)).quantize(Decimal("0.0001"))

    @property
    def cap_percentile(self) -> Decimal | None:
        """The share of seats (percent) the fair-use cap would not touch."""
        if self.fair_use_cap is None or not self.costs:
            return None
        within = bisect_right(self.costs, self.fair_use_cap)
        return (Decimal(within) / len(self.costs) * 100).quantize(Decimal("0.01"))

    @property
    def tier_margin_percent(self) -> Decimal | None:
        """(seat fees − AI cost) / seat fees of the seats with calls."""
        if self.seat_fee_usd is None or not self.costs or not self.seat_fee_usd:
            return None
        fees = self.seat_fee_usd * len(self.costs)
        return margin_of_revenue(fees, sum(self.costs, ZERO))[1]

    @property
    def below_break_even(self) -> bool:
        """The seats' AI cost exceeds their fees."""
        margin = self.tier_margin_percent
        return margin is not None and margin < 0


def premium_break_even(*, start: datetime, end: datetime) -> list[PremiumBreakEven]:
    """Per plan with a premium seat fee (its current version), the seats of its customers
    (the plan in effect at `start`) over [start, end)."""
    # The columns the plan in effect needs: thousands of subscriptions, as tuples.
    subscriptions = list(Subscription.objects.values_list("pk", "customer_id", "plan_id"))
    plan_ids = plan_ids_in_effect(
        plans={pk: plan_id for pk, _, plan_id in subscriptions}, moment=start, every=True
    )
    plan_of_customer = {customer_id: plan_ids[pk] for pk, customer_id, _ in subscriptions}
    costs = running_seat_costs(start=start, end=end, plans=plan_of_customer)
    reports = []
    for plan_id in sorted(set(plan_of_customer.values())):
        version = plan_version_current(plan_id=plan_id)
        if version is None or version.premium_seat_fee is None:
            continue
        fee_usd = fx_convert(
            amount=version.premium_seat_fee, source=version.currency, target="USD", at=start
        )
        plan_costs = costs.get(plan_id, [])
        target = version.premium_target_margin_percent
        cap = (
            None
            if fee_usd is None
            else fair_use_cap(plan_costs, fee_usd * len(plan_costs) * (100 - target) / 100)
        )
        reports.append(
            PremiumBreakEven(
                plan=version.plan.code,
                currency=version.currency,
                seat_fee=version.premium_seat_fee,
                seat_fee_usd=fee_usd,
                target_margin_percent=target,
                costs=plan_costs,
                fair_use_cap=cap,
            )
        )
    return reports


def fair_use_caps(*, start: datetime, end: datetime) -> dict[str, Decimal | None]:
    """Plan code -> its fair-use cap per premium seat (USD) over [start, end), for each
    plan with a premium seat fee (None: no cap needed, or no FX rate for the fee): what
    billing/limits enforces (settings.LIMITS_FAIR_USE_CAPS)."""
    return {report.plan: report.fair_use_cap for report in premium_break_even(start=start, end=end)}
