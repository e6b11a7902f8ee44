"""Which grants pay an invoice, and how much each, and where the credits that paid an
earlier period go back when a later invoice credits that period: pure, so that the
preview and the close (billing/invoicing/selectors/rating.py) agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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


@dataclass(frozen=True, slots=True)
class SourceDraw:
    """What one grant paid of an earlier invoice, and what came back of it since."""

    grant_id: int
    drawn: int  # minor units
    returned: int
    paid: bool
    live: bool  # live in the period now billed: returns go back to it, else to a new grant
    priority: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class CreditReturn:
    source_invoice_id: int
    grant_id: int  # the grant that paid; a new promotional grant gets it when not `live`
    amount: int  # minor units, > 0
    paid: bool
    live: bool


def credits_returns(
    credit: int, source_invoice_id: int, draws: Sequence[SourceDraw]
) -> tuple[CreditReturn, ...]:
    """Of a credit of `credit` minor units for an earlier period, what goes back to the
    credits that paid that period's invoice: the grant drawn last first (a draw undone),
    each at most what it paid and has not had back. The rest stays a credit on the
    invoice."""
    returns = []
    left = credit
    for draw in reversed(draws):
        if left <= 0:
            break
        amount = min(left, draw.drawn - draw.returned)
        if amount > 0:
            returns.append(
                CreditReturn(source_invoice_id, draw.grant_id, amount, draw.paid, draw.live)
            )
            left -= amount
    return tuple(returns)


def returns_lines(returns: Sequence[CreditReturn], currency: str) -> tuple[RatedLine, ...]:
    """The invoice's lines for credits going back (positive: they offset the credit line
    of the period they had paid, whose amount goes to the credits instead)."""
    lines = []
    for kind, description, paid in (
        (LineKind.PREPAID_RETURNED, "Prepaid credits returned", True),
        (LineKind.CREDITS_RETURNED, "Credits returned", False),
    ):
        back = sum(r.amount for r in returns if r.paid == paid)
        if back:
            lines.append(
                RatedLine(
                    kind,
                    description,
                    Decimal(1),
                    from_minor_units(back, currency),
                    back,
                    subject=description,
                )
            )
    return tuple(lines)


def balances_with_returns(
    balances: Sequence[GrantBalance], returns: Sequence[CreditReturn], sources: Sequence[SourceDraw]
) -> list[GrantBalance]:
    """The balances an invoice draws on, with what live grants got back added (a grant
    that was empty is usable again). Credits returned to a new grant are not: it takes
    effect at the period's end."""
    by_grant = {b.grant_id: b for b in balances}
    terms = {s.grant_id: s for s in sources}
    for back in returns:
        if not back.live:
            continue
        found = by_grant.get(back.grant_id)
        if found is None:
            source = terms[back.grant_id]
            found = GrantBalance(back.grant_id, source.priority, source.expires_at, 0, source.paid)
        by_grant[back.grant_id] = replace(found, balance=found.balance + back.amount)
    return list(by_grant.values())
