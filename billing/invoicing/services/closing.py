"""Closing a customer's billing period into its invoice, exactly once, and moving an
invoice through its states.

Over 400 lines because the close is one transaction whose steps (locks, snapshot, rating,
bulk insert, what it sends after commit) must be read together to see it is exactly once.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.types.json import Jsonb

from api.errors import ApiError, ErrorDetail
from billing.credits.selectors import period_credits
from billing.credits.services import (
    draws_record,
    grants_expire,
    grants_lock,
    plan_credits_grant,
    returns_record,
)
from billing.invoicing.fx import FxRateNeeded, MissingFxRate
from billing.invoicing.models import Invoice, InvoiceStatus, PushState
from billing.invoicing.selectors import margin_of, periods_due, periods_rate
from billing.invoicing.selectors.rating import previous_invoices
from billing.invoicing.watermark import snapshot_take
from billing.plans.models import PlanVersion, Subscription
from billing.plans.periods import subscription_period
from common.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

# What a close sends after its commit, by name (billing/stripe_sync/tasks.py and
# billing/analytics/tasks.py hold them; this app is below both).
PUSH_INVOICE = "billing.tasks.push_invoice"
RECONCILE_INVOICES = "billing.tasks.reconcile_invoices"


class PeriodNotReady(Exception):
    """The period before this one is not invoiced yet: periods close in order."""


@dataclass(slots=True)
class ClosedPeriods:
    invoices: list[Invoice] = field(default_factory=list)  # new or already there
    created: int = 0
    not_ready: list[int] = field(default_factory=list)  # customers whose previous period is open
    # Customers whose invoice needs FX rates nobody entered: it waits for them.
    waiting: dict[int, frozenset[FxRateNeeded]] = field(default_factory=dict)


def periods_close(
    *, customer_ids: list[int], period_start: datetime, period_end: datetime
) -> ClosedPeriods:
    """Close the period [period_start, period_end) of each of these customers into its
    invoice, in one transaction and a handful of aggregate queries, whatever their number.

    Safe to run twice, at once or again: the subscriptions' row locks serialise closes of
    one customer, an invoice already there is returned as it is, and the unique (customer,
    period_start) is the guard underneath. Everything is read as one snapshot sees it,
    taken once the locks are held (so it sees every earlier close of these customers):
    facts committed after it, for this or an earlier period, are late usage (or credits)
    on the next invoice (billing/invoicing/watermark.py). A customer whose previous period is not
    invoiced yet is left out (`not_ready`): periods close in order; so is one whose
    invoice needs an FX rate nobody entered (`waiting`).
    """
    result = ClosedPeriods()
    with transaction.atomic():
        subscriptions = list(
            Subscription.objects.select_for_update()
            .filter(customer_id__in=customer_ids)
            .only(
                "customer_id",
                "plan_id",
                "premium_seats",
                "started_at",
                "billing_anchor_day",
                "timezone",
            )
            .order_by("pk")
        )
        checked: dict[tuple[object, ...], tuple[datetime, datetime]] = {}
        for subscription in subscriptions:
            # Most subscriptions share their rules: compute each kind of period once. A
            # start before period_start gives the same answer whatever it is.
            started = subscription.started_at if subscription.started_at >= period_start else None
            rules = (started, subscription.billing_anchor_day, subscription.timezone)
            if rules not in checked:
                checked[rules] = subscription_period(
                    period_start,
                    started_at=subscription.started_at,
                    anchor_day=subscription.billing_anchor_day,
                    timezone=subscription.timezone,
                )
            if checked[rules] != (period_start, period_end):
                raise ValueError(
                    f"[{period_start}, {period_end}) is not a period of {subscription}"
                )
        existing = {
            invoice.customer_id: invoice
            for invoice in Invoice.objects.standing().filter(
                customer_id__in=customer_ids, period_start=period_start
            )
        }
        result.invoices.extend(existing.values())
        _resend_lost_pushes(list(existing.values()))
        previous = previous_invoices(customer_ids=customer_ids, before=period_start)
        todo = []
        for subscription in subscriptions:
            if subscription.customer_id in existing:
                continue
            if period_start > subscription.started_at and subscription.customer_id not in previous:
                result.not_ready.append(subscription.customer_id)
            else:
                todo.append(subscription)
        if todo:
            # The credits the invoices draw on: the plans' grants of the period made (if
            # the job at the period's start has not), and no void or other close changes
            # them now.
            plan_credits_grant(
                planned=period_credits(subscriptions=todo, start=period_start, end=period_end)
            )
            grants_lock(customer_ids=[s.customer_id for s in todo])
            new = close_rated(todo, period_start, period_end, snapshot_take(), previous, result)
            result.invoices.extend(new)
            result.created = len(new)
    return result


def _close_chunk(chunk: tuple[list[int], datetime, datetime]) -> int:
    customer_ids, start, end = chunk
    try:
        return periods_close(customer_ids=customer_ids, period_start=start, period_end=end).created
    finally:
        connections.close_all()  # in a forked worker: its own connection, closed with it


def periods_due_close(
    *,
    as_of: datetime,
    customer_external_id: str | None = None,
    chunk_size: int = 5000,
    processes: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Close every period due by `as_of`, oldest first, in chunks of customers that share
    a period; returns how many invoices were made. What the beat does one task per
    customer period, for operators and for closing many customers fast. With
    `processes` > 1 the chunks of one period close in that many forked processes at once
    (each chunk is its own transaction; periods still close in order)."""
    due = list(periods_due(as_of=as_of, customer_external_id=customer_external_id))
    groups: dict[tuple[datetime, datetime], list[int]] = {}
    for period in due:
        groups.setdefault((period.start, period.end), []).append(period.customer_id)
    created = done = 0
    for (start, end), customers in sorted(groups.items()):
        size = min(chunk_size, -(-len(customers) // processes))  # at least one per process
        chunks = [(customers[at : at + size], start, end) for at in range(0, len(customers), size)]
        if processes > 1 and len(chunks) > 1:
            connections.close_all()  # no connection may be shared with the children
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                for made, chunk in zip(pool.imap(_close_chunk, chunks), chunks, strict=True):
                    created, done = created + made, done + len(chunk[0])
                    if progress is not None:
                        progress(done, len(due))
            continue
        for chunk in chunks:
            created += periods_close(
                customer_ids=chunk[0], period_start=start, period_end=end
            ).created
            done += len(chunk[0])
            if progress is not None:
                progress(done, len(due))
    return created


def _resend_lost_pushes(invoices: list[Invoice]) -> None:
    """A close delivered again after its worker died between its commit and sending the
    pushes finds its invoices made and their pushes never sent: it sends them (after its
    own commit), rather than leaving them to the beat sweep minutes later. Safe if the
    first message did go out: a push resumes from its step, under idempotency keys."""
    if not settings.STRIPE_API_KEY:
        return
    for invoice in invoices:
        if invoice.push_state == PushState.PENDING:
            enqueue_on_commit(PUSH_INVOICE, invoice.pk)


def close_rated(
    subscriptions: list[Subscription],
    start: datetime,
    end: datetime,
    snapshot: str,
    previous: dict[int, Invoice],
    result: ClosedPeriods,
    rated_on: dict[int, PlanVersion] | None = None,
) -> list[Invoice]:
    """Rate these subscriptions' period as `snapshot` sees it and store the invoices: the
    close's second half, and a reissue's (with the plan versions it corrects: `rated_on`)."""
    closed_at = timezone.now()
    invoices, lines, margins, draws, returns = [], [], [], [], []
    for period in periods_rate(
        subscriptions=subscriptions,
        start=start,
        end=end,
        snapshot=snapshot,
        previous=previous,
        rated_on=rated_on,
    ):
        subscription = period.subscription
        customer_id = subscription.customer_id
        if period.missing_rates:
            result.waiting[customer_id] = period.missing_rates
            logger.warning(
                "close of customer %s period %s waits for FX rates: %s",
                subscription.customer.external_id,
                start.date(),
                ", ".join(map(str, sorted(period.missing_rates))),
            )
            continue
        # The margin of what this invoice bills: its period's calls and those that came
        # late for earlier periods (cost follows revenue).
        margin = margin_of(period=period)
        invoices.append(
            Invoice(
                customer_id=customer_id,
                period_start=start,
                period_end=end,
                plan_version=period.version,
                currency=period.invoice.currency,
                total=period.invoice.total,
                closed_at=closed_at,
                snapshot=snapshot,
            )
        )
        lines.append(period.invoice.lines)
        margins.append((margin, period.calls, period.tokens))
        draws.append(period.prepaid)
        returns.append(period.returns)
        if margin.margin is not None and margin.margin < 0:
            logger.warning(
                "negative margin: customer %s period %s margin %s USD",
                subscription.customer.external_id,
                start.date(),
                margin.margin,
            )
    if not invoices:
        return []
    _insert_invoices(invoices)
    # Lines and margin rows by COPY: at thousands of invoices per close, building
    # model instances for bulk_create cost more than the database's own work.
    _copy(
        "billing_invoiceline",
        (
            "invoice_id",
            "position",
            "kind",
            "description",
            "quantity",
            "unit_price",
            "amount",
            "outcome_type",
            "feature",
            "source_invoice_id",
            "stripe_item_id",
        ),
        [
            (
                invoice.pk,
                position,
                line.kind,
                line.description,
                line.quantity,
                line.unit_price,
                line.amount,
                line.outcome_type,
                line.feature,
                line.source_invoice_id,
                "",
            )
            for invoice, invoice_lines in zip(invoices, lines, strict=True)
            for position, line in enumerate(invoice_lines, start=1)
        ],
    )
    returns_record(
        returns=[
            (invoice.pk, invoice.currency, back)
            for invoice, backs in zip(invoices, returns, strict=True)
            for back in backs
        ],
        at=end,
    )
    draws_record(
        draws=[
            (invoice.pk, invoice.currency, draw)
            for invoice, drawn in zip(invoices, draws, strict=True)
            for draw in drawn
        ],
        at=end,
    )
    # What the grants expiring in the period did not pay expires with its close.
    grants_expire(customer_ids=[invoice.customer_id for invoice in invoices], through=end)
    now = timezone.now()
    _copy(
        "billing_reconciliation",
        (
            "invoice_id",
            "revenue",
            "inference_cost",
            "calls",
            "tokens",
            "unpriced_calls",
            "margin",
            "margin_percent",
            "outcomes",
            "created_at",
        ),
        [
            (
                invoice.pk,
                margin.revenue,
                margin.inference_cost,
                calls,
                tokens,
                margin.unpriced_calls,
                margin.margin,
                margin.margin_percent,
                Jsonb({}),  # filled in with the cells (billing/analytics/services.py)
                now,
            )
            for invoice, (margin, calls, tokens) in zip(invoices, margins, strict=True)
        ],
    )
    # The breakdown by outcome type, model, feature and tier is a second, heavier scan:
    # a task makes it after the commit, off the close's path.
    enqueue_on_commit(RECONCILE_INVOICES, [invoice.pk for invoice in invoices])
    if settings.STRIPE_API_KEY:  # mirrored to Stripe when payback has a Stripe key
        for invoice in invoices:
            enqueue_on_commit(PUSH_INVOICE, invoice.pk)
    return invoices


_INSERT_INVOICES_SQL = """
INSERT INTO billing_invoice (customer_id, period_start, period_end, plan_version_id, currency,
    total, status, closed_at, snapshot, stripe_invoice_id, hosted_invoice_url, invoice_pdf,
    push_state, push_step, push_attempts, push_error, drift, created_at, updated_at)
SELECT customer_id, %(start)s, %(end)s, plan_version_id, currency, total, 'draft',
       %(closed_at)s, %(snapshot)s, '', '', '', 'pending', '', 0, '', '', %(now)s, %(now)s
FROM unnest(%(customers)s::bigint[], %(versions)s::bigint[], %(currencies)s::text[],
            %(totals)s::bigint[]) AS i(customer_id, plan_version_id, currency, total)
RETURNING id, customer_id
"""


def _insert_invoices(invoices: list[Invoice]) -> None:
    """Insert the invoices of one close in one statement and give them their ids (their
    period and close time are the same)."""
    first = invoices[0]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_INVOICES_SQL,
            {
                "start": first.period_start,
                "end": first.period_end,
                "closed_at": first.closed_at,
                "snapshot": first.snapshot,
                "now": timezone.now(),
                "customers": [i.customer_id for i in invoices],
                "versions": [i.plan_version_id for i in invoices],
                "currencies": [i.currency for i in invoices],
                "totals": [i.total for i in invoices],
            },
        )
        ids = dict((customer_id, pk) for pk, customer_id in cursor.fetchall())
    for invoice in invoices:
        invoice.pk = ids[invoice.customer_id]
        invoice._state.adding = False


def _copy(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def period_close(*, customer_id: int, period_start: datetime) -> Invoice:
    """The invoice of one customer's period starting at `period_start` (see
    periods_close); raises PeriodNotReady while the period before is not invoiced, and
    MissingFxRate while its fees need a rate nobody entered."""
    subscription = Subscription.objects.get(customer_id=customer_id)
    start, end = subscription_period(
        period_start,
        started_at=subscription.started_at,
        anchor_day=subscription.billing_anchor_day,
        timezone=subscription.timezone,
    )
    if start != period_start:
        raise ValueError(f"{period_start.isoformat()} does not start a period of {subscription}")
    closed = periods_close(customer_ids=[customer_id], period_start=start, period_end=end)
    if closed.not_ready:
        raise PeriodNotReady(f"the period before {start.isoformat()} is not invoiced yet")
    if closed.waiting:
        raise MissingFxRate(closed.waiting[customer_id])
    return closed.invoices[0]


# draft -> finalized -> paid | void | uncollectible; an uncollectible invoice may still
# be paid or voided (as in Stripe). Nothing moves backwards.
_MOVES: dict[str, frozenset[str]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.VOID}),
    InvoiceStatus.FINALIZED: frozenset(
        {InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}
    ),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
}


def invoice_can_move(current: str, target: str) -> bool:
    return target in _MOVES.get(current, frozenset())


def invoice_can_reach(current: str, target: str) -> bool:
    """Whether `target` lies ahead of `current` (in one move or more): a webhook may
    report a later state before the one between (paid before finalized)."""
    ahead, seen = [current], {current}
    while ahead:
        for following in _MOVES.get(ahead.pop(), frozenset()):
            if following == target:
                return True
            if following not in seen:
                seen.add(following)
                ahead.append(following)
    return False


def invoice_move(*, invoice_id: int, status: str) -> Invoice:
    """Move an invoice to `status`; the same status again changes nothing; a move the
    state machine does not allow is refused (409)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status == status:
            return invoice
        if not invoice_can_move(invoice.status, status):
            raise ApiError(
                [
                    ErrorDetail(
                        field="status",
                        code="invalid_transition",
                        message=f"Invoice {invoice.pk} is {invoice.status}; "
                        f"it cannot become {status}.",
                    )
                ],
                status_code=409,
            )
        invoice.status = status
        invoice.save(update_fields=["status", "updated_at"])
    return invoice
