"""Which grants pay an invoice, and how much each: pure, so that the preview and the close
(billing/invoicing/selectors/rating.py) draw the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.money import from_minor_units
from billing.plans.models import LineKind
from billing.plans.pricing import RatedLine


@dataclass(frozen=True, slots=True)
class GrantBalance:
    """What a grant holds for an invoice, in whole minor units of its currency. A grant
    the plan gives the period and nobody has made yet (the preview before the job that
    makes it) has no id: it is the youngest."""

    grant_id: int | None
    priority: int
    expires_at: datetime | None
    balance: int
    paid: bool = False  # bought (a top-up): its use is revenue, not a discount


@dataclass(frozen=True, slots=True)
class Draw:
    grant_id: int | None
    amount: int  # minor units, > 0
    paid: bool = False


def draw_order(grant: GrantBalance) -> tuple[int, bool, datetime | None, bool, int]:
    """Lowest priority first, then the earliest expiry (none last), then the oldest."""
    return (
        grant.priority,
        grant.expires_at is None,
        grant.expires_at,
        grant.grant_id is None,
        grant.grant_id or 0,
    )


def credits_draw(total: int, grants: Sequence[GrantBalance]) -> tuple[Draw, ...]:
    """What each grant pays of an invoice of `total` minor units: in order, each as much as
    it holds, until the total is paid. Nothing when the invoice is $0 or a credit: credits
    never take an invoice below zero."""
    draws = []
    due = total
    for grant in sorted(grants, key=draw_order):
        if due <= 0:
            break
        amount = min(due, grant.balance)
        if amount > 0:
            draws.append(Draw(grant.grant_id, amount, grant.paid))
            due -= amount
    return tuple(draws)


def credits_lines(draws: Sequence[Draw], currency: str) -> tuple[RatedLine, ...]:
    """The invoice's credit lines (negative): what bought credits paid ("Prepaid credits
    applied": revenue, as the credits are used) and what free ones paid ("Credits
    applied": a discount), each only when something was drawn."""
    lines = []
    for kind, description, paid in (
        (LineKind.PREPAID_APPLIED, "Prepaid credits applied", True),
        (LineKind.CREDITS_APPLIED, "Credits applied", False),
    ):
        drawn = sum(draw.amount for draw in draws if draw.paid == paid)
        if drawn:
            lines.append(
                RatedLine(
                    kind,
                    description,
                    Decimal(1),
                    -from_minor_units(drawn, currency),
                    -drawn,
                    subject=description,
                )
            )
    return tuple(lines)
