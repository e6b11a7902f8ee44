"""Reads of the outcomes app: what each outcome cost, and outcomes per type and period.
Every figure comes from SQL aggregates; costs are USD and unpriced calls are counted,
never taken as $0."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.http import Http404
from django.utils.module_loading import import_string

from common.replicas import reading
from metering.models import CostSource, Customer, UsageEvent
from outcomes.models import Dispute, DisputeStatus, Outcome


def outcome_get(*, external_id: str) -> Outcome:
    outcome = Outcome.objects.select_related("customer").filter(external_id=external_id).first()
    if outcome is None:
        raise Http404(f"No outcome `{external_id}`.")
    return outcome


@dataclass(frozen=True, slots=True)
class OutcomeCost:
    calls: int
    cost: Decimal | None  # USD over priced calls; None when there are only unpriced calls
    unpriced_calls: int


def outcome_cost(*, outcome: Outcome) -> OutcomeCost:
    """The calls attributed to this outcome (its customer's events naming it)."""
    row = UsageEvent.objects.filter(
        customer_id=outcome.customer_id, outcome_ref=outcome.external_id
    ).aggregate(
        calls=Count("pk"),
        cost=Sum("cost"),
        unpriced=Count("pk", filter=Q(cost_source=CostSource.UNPRICED)),
    )
    cost = row["cost"]
    if cost is None and not row["unpriced"]:
        cost = Decimal(0)
    return OutcomeCost(calls=row["calls"], cost=cost, unpriced_calls=row["unpriced"])


@dataclass(frozen=True, slots=True)
class OutcomeTypeSummary:
    type: str
    succeeded: int
    failed: int
    pending: int
    reversed: int
    calls: int
    # USD: all calls attributed to outcomes of this type, failed and pending included.
    cost: Decimal
    unpriced_calls: int

    @property
    def cost_per_success(self) -> Decimal | None:
        """The real price of a success: what every attempt cost, per success."""
        return self.cost / self.succeeded if self.succeeded else None


# Statuses per type from the outcomes alone; calls per type from one join of the
# customer's attributed events with those outcomes (a hash join, no per-outcome groups).
_TYPE_SUMMARY_SQL = """
WITH period_outcomes AS MATERIALIZED (
    SELECT external_id, type, status FROM outcomes_outcome
    WHERE customer_id = %(customer)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
), statuses AS (
    SELECT type,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'reversed') AS reversed
    FROM period_outcomes GROUP BY type
), calls AS (
    SELECT o.type, count(*) AS calls, sum(e.cost) AS cost,
           count(*) FILTER (WHERE e.cost_source = 'unpriced') AS unpriced
    FROM metering_usageevent e JOIN period_outcomes o ON o.external_id = e.outcome_ref
    WHERE e.customer_id = %(customer)s AND e.outcome_ref <> ''
    GROUP BY o.type
)
SELECT s.type, s.succeeded, s.failed, s.pending, s.reversed,
       coalesce(c.calls, 0), coalesce(c.cost, 0), coalesce(c.unpriced, 0)
FROM statuses s LEFT JOIN calls c ON c.type = s.type
ORDER BY s.type
"""


def outcome_type_summaries(
    *, customer: Customer, start: datetime, end: datetime
) -> list[OutcomeTypeSummary]:
    """Per outcome type, the outcomes that occurred in [start, end) and the cost of every
    call attributed to them, whenever the call was made."""
    with reading().cursor() as cursor:
        cursor.execute(_TYPE_SUMMARY_SQL, {"customer": customer.pk, "start": start, "end": end})
        return [
            OutcomeTypeSummary(type_, int(s), int(f), int(p), int(r), int(calls), cost, int(u))
            for type_, s, f, p, r, calls, cost, u in cursor.fetchall()
        ]


def reversal_window(*, customer: Customer) -> timedelta:
    """How long after its success an outcome of this customer may be reversed: the
    customer's plan says (settings.OUTCOME_REVERSAL_WINDOW names the function that reads
    it, in billing, which this app may not import)."""
    window: Callable[..., timedelta] = import_string(settings.OUTCOME_REVERSAL_WINDOW)
    return window(customer=customer)


def dispute_counts(
    *,
    start: datetime,
    end: datetime,
    by: str,
    customer: str | None = None,
    outcome_type: str | None = None,
) -> dict[str, tuple[int, int]]:
    """Per customer (external id) or per outcome type (`by`: "customer" or "type"): of
    the outcomes that succeeded in [start, end), how many were disputed, and of those how
    many had a dispute accepted."""
    disputes = Dispute.objects.filter(
        outcome__succeeded_at__gte=start, outcome__succeeded_at__lt=end
    )
    if customer is not None:
        disputes = disputes.filter(outcome__customer__external_id=customer)
    if outcome_type is not None:
        disputes = disputes.filter(outcome__type=outcome_type)
    key = "outcome__customer__external_id" if by == "customer" else "outcome__type"
    rows = disputes.values(key).annotate(
        disputed=Count("outcome", distinct=True),
        accepted=Count("outcome", distinct=True, filter=Q(status=DisputeStatus.ACCEPTED)),
    )
    return {row[key]: (row["disputed"], row["accepted"]) for row in rows}
