"""A closed period's margin breakdown: its calls in cells (outcome type × feature × tier ×
model) with the invoice spread over them, and its outcomes per type. Made by a task
after the close (one more scan of the period's calls, kept off the close's path), and by
a sweep for what a lost task or an older payback left without; the margin report reads
them (billing/analytics/selectors/margins.py)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.types.json import Jsonb

from billing.analytics.models import ReconciliationCell
from billing.analytics.selectors.margins import revenue_spread, window_outcomes
from billing.invoicing.models import CreditNoteLine, Invoice, InvoiceLine
from billing.invoicing.selectors.cells import Cell, Window, windows_usage
from billing.invoicing.selectors.rating import late_changes
from billing.plans.models import Subscription

CELL_COLUMNS = (
    "invoice_id",
    "outcome_type",
    "feature",
    "tier",
    "provider",
    "model",
    "calls",
    "tokens",
    "cost",
    "unpriced_calls",
    "revenue",
    "discount",
)


ZERO = Decimal(0)
# The kind a credit note's line of its own is spread as: over every billed call.
CREDIT_NOTE = "credit_note"


class _Line(NamedTuple):
    """A stored invoice line, as much of it as the spread needs."""

    kind: str
    amount: int
    outcome_type: str
    feature: str | None


_BREAKDOWN_DONE_SQL = """
UPDATE billing_reconciliation r SET outcomes = u.outcomes, breakdown_at = %(now)s,
    breakdown_revenue = u.revenue, breakdown_discount = u.discount,
    outcome_cost = u.outcome_cost, tokens = u.tokens
FROM unnest(%(invoices)s::bigint[], %(outcomes)s::jsonb[], %(revenue)s::numeric[],
            %(discount)s::numeric[], %(outcome_cost)s::numeric[], %(tokens)s::bigint[])
     AS u(invoice_id, outcomes, revenue, discount, outcome_cost, tokens)
WHERE r.invoice_id = u.invoice_id
"""


def invoices_reconcile(*, invoice_ids: list[int]) -> int:
    """Write the cells and outcome counts of these invoices, replacing any (the invoice
    rows are locked, so two runs at once write once each, in turn). An invoice's cells are
    the calls its close's snapshot saw: its period's, and those that arrived (or were
    priced) late for earlier periods since the close before, whose cost counts where their
    revenue is billed. The same cells whenever this runs. Returns how many invoices were
    reconciled."""
    with transaction.atomic():
        invoices = list(
            Invoice.objects.select_for_update(of=("self",))
            .filter(pk__in=invoice_ids)
            .select_related("plan_version")
            .only(
                "customer_id",
                "period_start",
                "period_end",
                "snapshot",
                "currency",
                "plan_version__included_features",
            )
            .order_by("pk")
        )
        lines: dict[int, list[_Line]] = defaultdict(list)
        for invoice_id, *line in InvoiceLine.objects.filter(invoice__in=invoices).values_list(
            "invoice_id", "kind", "amount", "outcome_type", "feature"
        ):
            lines[invoice_id].append(_Line(*line))
        # Credit notes give back part of what lines billed: taken off the revenue of the
        # calls those lines billed (a line of its own: off every billed call's), by the
        # same spread.
        for invoice_id, amount, *credited in CreditNoteLine.objects.filter(
            credit_note__invoice__in=invoices
        ).values_list(
            "credit_note__invoice_id",
            "amount",
            "invoice_line__kind",
            "invoice_line__outcome_type",
            "invoice_line__feature",
        ):
            kind, outcome_type, feature = credited
            lines[invoice_id].append(
                _Line(kind or CREDIT_NOTE, -amount, outcome_type or "", feature)
            )
        groups: dict[tuple[datetime, datetime, str], list[Invoice]] = defaultdict(list)
        for invoice in invoices:
            groups[(invoice.period_start, invoice.period_end, invoice.snapshot)].append(invoice)
        rows, outcome_counts = [], []
        # Per invoice, its cells summed (the margin report by customer reads these).
        sums: dict[str, list[Decimal | int]] = {
            "revenue": [], "discount": [], "outcome_cost": [], "tokens": []
        }  # fmt: skip
        for (start, end, snapshot), members in groups.items():
            windows = [Window(i.customer_id, start, end, snapshot or None) for i in members]
            usage = windows_usage(windows=windows)
            outcomes = window_outcomes(windows=windows)
            late = _late_cells(members, start=start, snapshot=snapshot or None)
            for invoice, window in zip(members, windows, strict=True):
                cells = revenue_spread(
                    cells=usage[window].cells + late.get(invoice.customer_id, []),
                    lines=lines[invoice.pk],
                    currency=invoice.currency,
                    included=invoice.plan_version.included_features,
                )
                rows += [
                    (
                        invoice.pk,
                        cell.outcome_type,
                        cell.feature,
                        cell.tier,
                        cell.provider,
                        cell.model,
                        cell.calls,
                        cell.tokens,
                        cell.cost,
                        cell.unpriced_calls,
                        cell.revenue,
                        cell.discount,
                    )
                    for cell in cells
                ]
                outcome_counts.append(Jsonb(outcomes[(invoice.customer_id, start)]))
                sums["revenue"].append(sum((cell.revenue for cell in cells), ZERO))
                sums["discount"].append(sum((cell.discount for cell in cells), ZERO))
                sums["outcome_cost"].append(
                    sum((cell.cost for cell in cells if cell.outcome_type), ZERO)
                )
                sums["tokens"].append(sum(cell.tokens for cell in cells))
        ReconciliationCell.objects.filter(invoice__in=invoices).delete()
        # By COPY: a close of thousands of customers makes tens of thousands of cells.
        statement = sql.SQL("COPY billing_reconciliationcell ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, CELL_COLUMNS))
        )
        with connection.cursor() as cursor:
            with cursor.cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                _BREAKDOWN_DONE_SQL,
                {
                    "now": timezone.now(),
                    "invoices": [invoice.pk for members in groups.values() for invoice in members],
                    "outcomes": outcome_counts,
                    **sums,
                },
            )
    return len(invoices)


def _late_cells(
    invoices: list[Invoice], *, start: datetime, snapshot: str | None
) -> dict[int, list[Cell]]:
    """Per customer, the calls of earlier periods that these invoices' close saw arrive or
    get their price since the close before (the one of the period ending at `start`)."""
    customer_ids = [invoice.customer_id for invoice in invoices]
    previous = {
        invoice.customer_id: invoice
        for invoice in Invoice.objects.standing()
        .filter(customer_id__in=customer_ids, period_end=start)
        .only("customer_id", "snapshot", "period_start", "period_end")
    }
    if not previous:
        return {}
    changes = late_changes(
        subscriptions=list(Subscription.objects.filter(customer_id__in=list(previous))),
        previous=previous,
        snapshot=snapshot,
        detail=True,
    )
    return {
        customer_id: [cell for change in found for cell in change.cells]
        for customer_id, (found, _) in changes.items()
    }
