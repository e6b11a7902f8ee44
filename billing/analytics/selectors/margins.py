"""The margin report: revenue, inference cost and margin per customer, outcome type,
model, feature or tier, in one reporting currency.

A period's economics are its calls grouped into cells (outcome type × feature × tier ×
model) and its invoice lines spread over those cells:

- a line that bills an outcome type goes to the calls of that type's outcomes, a
  pass-through line to its feature's calls, the premium seat fee to premium-tier calls,
  and the rest (base fee, minimum top-up) to every call;
- within its calls, a line is spread in proportion to their cost (to their number when
  they cost nothing); a line with no calls to spread over keeps a cell of its own (an
  outcome type, a feature or the premium tier with no model);
- no fee is spread over a plan's included features: their calls are cost with zero
  revenue, the price of retention.

So revenue by customer or outcome type is exact, and revenue by model, feature or tier
is the share of each line that the calls behind it earned. A closed period's cells are
stored by a task after its close (billing/analytics/services.py; ReconciliationCell,
summing to its invoice) and summed here in SQL; an open period's are computed live from
the same SQL (billing/invoicing/selectors/cells.py) and the same rating.

One module of about 600 lines: the report's SQL, the spreading of lines over cells and the
grouping share their row types, and the spreading is the rule the stored breakdown
(billing/analytics/services.py) follows too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import NamedTuple, Protocol

from django.conf import settings
from django.db.models import OuterRef, Q, Subquery, Sum

from billing.invoicing.fx import usd_per_unit
from billing.invoicing.models import CreditNote, Invoice, InvoiceStatus
from billing.invoicing.selectors.cells import Cell, CostStatus, Window, cost_status, windows_usage
from billing.invoicing.selectors.rating import RatedPeriod, periods_rate
from billing.invoicing.selectors.running import running_outcomes, running_window
from billing.money import from_minor_units, margin_of_revenue
from billing.plans.models import LineKind, Subscription
from billing.plans.periods import period_after, subscription_period
from common.replicas import reading
from metering.models import Customer
from outcomes.selectors import dispute_counts

ZERO = Decimal(0)
EXACT = Decimal("1e-12")
PREMIUM_TIER = "premium"
GROUP_BYS: tuple[str, ...] = ("customer", "outcome_type", "model", "feature", "tier")
# A grouping of the dashboard's own (not the API's): by model, with the calls of included
# features apart under INCLUDED_KEY.
WATERFALL = "waterfall"
INCLUDED_KEY = "~included"
# A grouping of a customer's page: by billing period, its start in epoch seconds the key.
PERIOD = "period"
# The groupings with outcome counts (an outcome has no model, feature or tier).
WITH_OUTCOMES = ("customer", "outcome_type", PERIOD)
# Promotional credits: what they pay is a discount (negative on the invoice), not revenue.
FREE_CREDITS = (LineKind.CREDITS_APPLIED, LineKind.CREDITS_RETURNED)


class BilledLine(Protocol):
    """An invoice line, rated (billing/plans/pricing.py) or stored (billing.models)."""

    kind: str
    amount: int
    outcome_type: str
    feature: str | None


def _line_scope(line: BilledLine, cells: list[Cell], included: Sequence[str]) -> list[Cell]:
    if line.outcome_type:
        return [c for c in cells if c.outcome_type == line.outcome_type]
    if line.feature is not None:
        return [c for c in cells if c.feature == line.feature]
    billed = [c for c in cells if c.feature not in included]
    if line.kind == LineKind.SEATS:
        return [c for c in billed if c.tier == PREMIUM_TIER]
    return billed


def revenue_spread(
    *, cells: list[Cell], lines: Iterable[BilledLine], currency: str, included: Sequence[str]
) -> list[Cell]:
    """The cells with each line's amount spread over the calls it billed (see the module
    docstring); the cells' revenue sums to the lines' amounts exactly. Cells for lines
    with no calls are added. Bought credits that paid part of the invoice take nothing
    away, nor add what came back to them: their use is revenue (free credits are a
    discount, spread as the base fee, and counted in each cell's `discount` too)."""
    cells = [cell.unspread() for cell in cells]
    for line in lines:
        if not line.amount or line.kind in (LineKind.PREPAID_APPLIED, LineKind.PREPAID_RETURNED):
            continue
        amount = from_minor_units(line.amount, currency)
        scope = _line_scope(line, cells, included)
        weights = [c.cost for c in scope]
        if not sum(weights):
            weights = [Decimal(c.calls) for c in scope]
        total = sum(weights)
        if not total:
            own = Cell(
                outcome_type=line.outcome_type,
                feature=line.feature or "",
                tier=PREMIUM_TIER if line.kind == LineKind.SEATS else "",
                provider="",
                model="",
            )
            existing = next((c for c in cells if c.key == own.key), None)
            if existing is None:
                cells.append(own)
                existing = own
            existing.revenue += amount
            if line.kind in FREE_CREDITS:
                existing.discount -= amount
            continue
        shares = [(amount * w / total).quantize(EXACT, rounding=ROUND_DOWN) for w in weights]
        # The rounding remainder (under 1e-12 per cell) goes to the heaviest cell.
        heaviest = max(range(len(scope)), key=lambda i: weights[i])
        shares[heaviest] += amount - sum(shares)
        for cell, share in zip(scope, shares, strict=True):
            cell.revenue += share
            if line.kind in FREE_CREDITS:
                cell.discount -= share
    return cells


OutcomeCounts = dict[str, tuple[int, int, int]]  # type -> succeeded, failed, reversed


def window_outcomes(*, windows: Sequence[Window]) -> dict[tuple[int, datetime], OutcomeCounts]:
    """Outcomes per type of each window as of now: successes (still succeeded), failures,
    and the window's successes since reversed (from the running rollup)."""
    outcomes: dict[tuple[int, datetime], OutcomeCounts] = {(w[0], w[1]): {} for w in windows}
    if not windows:
        return outcomes
    ordered = list(dict.fromkeys((w[0], w[1], w[2]) for w in windows))
    for key, outcome_type, succeeded, failed, reversed_ in running_outcomes(
        windows=[running_window(*window) for window in ordered]
    ):
        customer_id, start, _ = ordered[key - 1]
        outcomes[(customer_id, start)][outcome_type] = (succeeded, failed, reversed_)
    return outcomes


@dataclass(slots=True)
class PeriodEconomics:
    customer: str  # external id
    start: datetime
    end: datetime
    closed: bool
    currency: str  # of the revenue
    included_features: tuple[str, ...]
    cells: list[Cell]
    outcomes: OutcomeCounts
    # Its invoice is void or uncollectible: what it billed is written off, not revenue.
    written_off: bool = False


def _unbroken_down_periods(
    *, start: datetime, end: datetime, customer: str | None = None
) -> list[PeriodEconomics]:
    """Closed periods whose breakdown is not made yet (the task after the close makes
    it, soon after): one cell each with the totals the close stored (calls, tokens, cost,
    revenue), and the outcome counts the breakdown will store, counted now the same way;
    no outcome type, model, feature or tier until the breakdown."""
    invoices = list(
        Invoice.objects.standing()
        .filter(
            reconciliation__breakdown_at__isnull=True,
            period_start__lt=end,
            period_end__gt=start,
            **_of(customer),
        )
        .select_related("customer", "reconciliation")
        .annotate(
            free_credits=Sum("lines__amount", filter=Q(lines__kind__in=FREE_CREDITS)),
            # A subquery: a second Sum over another relation would multiply the rows.
            credited=Subquery(
                CreditNote.objects.filter(invoice=OuterRef("pk"))
                .values("invoice")
                .annotate(total=Sum("total"))
                .values("total")
            ),
        )
    )
    outcomes = window_outcomes(
        windows=[Window(i.customer_id, i.period_start, i.period_end) for i in invoices]
    )
    return [
        PeriodEconomics(
            customer=invoice.customer.external_id,
            start=invoice.period_start,
            end=invoice.period_end,
            closed=True,
            currency=invoice.currency,
            included_features=(),
            cells=[
                Cell(
                    "",
                    "",
                    "",
                    "",
                    "",
                    calls=invoice.reconciliation.calls,
                    # NULL only on a row made before payback stored tokens (models.py).
                    tokens=invoice.reconciliation.tokens or 0,
                    cost=invoice.reconciliation.inference_cost,
                    unpriced_calls=invoice.reconciliation.unpriced_calls,
                    revenue=invoice.reconciliation.revenue
                    - from_minor_units(invoice.credited or 0, invoice.currency),
                    discount=-from_minor_units(invoice.free_credits or 0, invoice.currency),
                )
            ],
            outcomes=outcomes[(invoice.customer_id, invoice.period_start)],
            written_off=invoice.status in WRITTEN_OFF,
        )
        for invoice in invoices
    ]


# Longer than any billing period (a month, and a DST hour): a subscription that started
# this long before a window has whole periods in it.
LONG_BEFORE = timedelta(days=40)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INVOICED_SQL = """
SELECT i.customer_id, extract(epoch FROM i.period_start)::bigint
FROM billing_invoice i JOIN metering_customer c ON c.id = i.customer_id
WHERE i.period_start < %(end)s AND i.period_end > %(start)s
  AND (%(customer)s::text IS NULL OR c.external_id = %(customer)s)
"""
_SUBSCRIPTIONS_SQL = """
SELECT s.id, s.customer_id,
       CASE WHEN s.started_at > %(start)s - interval '40 days'
            THEN (extract(epoch FROM s.started_at) * 1000000)::bigint END,
       s.billing_anchor_day, s.timezone
FROM billing_subscription s JOIN metering_customer c ON c.id = s.customer_id
WHERE s.started_at < %(until)s AND (%(customer)s::text IS NULL OR c.external_id = %(customer)s)
"""


def _periods_in(
    start: datetime, until: datetime, started_at: datetime, anchor_day: int, zone: str
) -> list[tuple[datetime, datetime]]:
    """A subscription's periods that overlap [start, until)."""
    rules = {"anchor_day": anchor_day, "timezone": zone}
    moment = max(start, started_at)
    if moment >= until:
        return []
    found = []
    p_start, p_end = subscription_period(moment, started_at=started_at, **rules)
    while p_start < until:
        found.append((p_start, p_end))
        p_start, p_end = period_after(p_end, **rules)
    return found


def _open_periods(
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    customer: str | None = None,
    rated: dict[tuple[int, datetime], RatedPeriod] | None = None,
) -> list[PeriodEconomics]:
    """Every subscription's periods in [start, min(end, now)) that are not invoiced yet,
    rated and spread live; customers without a plan over the whole window, cost only.
    `customer`: that customer's only. `rated`: periods the caller rated already, as of
    now and with `detail` (customer id and start -> its rating), not rated again."""
    rated = rated or {}
    until = min(end, now)
    with reading().cursor() as cursor:
        # As seconds, not timestamps: thousands of them, compared, never shown.
        cursor.execute(_INVOICED_SQL, {"start": start, "end": end, "customer": customer})
        invoiced = set(cursor.fetchall())
    # Which subscriptions have a period in the window not invoiced, from a few columns of
    # each: most share their rules, so each kind of period is computed once, and only the
    # subscriptions rated below are loaded whole (a closed month loads none).
    open_ids: dict[tuple[datetime, datetime], list[int]] = {}
    known: dict[tuple[object, ...], list[tuple[datetime, datetime]]] = {}
    with reading().cursor() as cursor:
        # (One started at `until` or later has no period in the window.)
        cursor.execute(_SUBSCRIPTIONS_SQL, {"start": start, "until": until, "customer": customer})
        subscriptions = cursor.fetchall()
    for pk, customer_id, later_start, anchor_day, zone in subscriptions:
        # (`later_start` in microseconds: thousands of them, most alike, few converted.)
        # A start before the period holding the window's start gives the same periods in
        # the window whatever it is (NULL: more than a longest period before the window).
        rules = (later_start, anchor_day, zone)
        if rules not in known:
            started_at = (
                start - LONG_BEFORE
                if later_start is None
                else EPOCH + timedelta(microseconds=later_start)
            )
            known[rules] = _periods_in(start, until, started_at, anchor_day, zone)
        for period in known[rules]:
            if (customer_id, int(period[0].timestamp())) not in invoiced:
                open_ids.setdefault(period, []).append(pk)
    loaded = Subscription.objects.select_related("customer").in_bulk(
        [pk for pks in open_ids.values() for pk in pks]
    )
    by_window = {period: [loaded[pk] for pk in pks] for period, pks in open_ids.items()}
    periods: list[PeriodEconomics] = []
    windows: list[Window] = []
    for (p_start, p_end), subscriptions in by_window.items():
        known = [
            rated[(s.customer_id, p_start)]
            for s in subscriptions
            if (s.customer_id, p_start) in rated
        ]
        rest = [s for s in subscriptions if (s.customer_id, p_start) not in rated]
        for period_rated in known + periods_rate(
            subscriptions=rest, start=p_start, end=p_end, snapshot=None, detail=True
        ):
            windows.append(Window(period_rated.subscription.customer_id, p_start, p_end))
            periods.append(
                PeriodEconomics(
                    customer=period_rated.subscription.customer.external_id,
                    start=p_start,
                    end=p_end,
                    closed=False,
                    currency=period_rated.terms.currency,
                    included_features=period_rated.terms.included_features,
                    cells=revenue_spread(
                        cells=period_rated.cells,
                        lines=period_rated.invoice.lines,
                        currency=period_rated.terms.currency,
                        included=period_rated.terms.included_features,
                    ),
                    outcomes={},
                )
            )
    unsubscribed = (
        list(
            Customer.objects.filter(
                subscription__isnull=True,
                **({} if customer is None else {"external_id": customer}),
            )
        )
        if start < until
        else []
    )
    plain = [Window(customer.pk, start, until) for customer in unsubscribed]
    usage = windows_usage(windows=plain)
    outcomes = window_outcomes(windows=windows + plain)
    for period, (customer_id, p_start, *_) in zip(periods, windows, strict=True):
        period.outcomes = outcomes[(customer_id, p_start)]
    for customer in unsubscribed:
        periods.append(
            PeriodEconomics(
                customer=customer.external_id,
                start=start,
                end=until,
                closed=False,
                currency=settings.REPORTING_CURRENCY,
                included_features=(),
                cells=usage[Window(customer.pk, start, until)].cells,
                outcomes=outcomes[(customer.pk, start)],
            )
        )
    return periods


def _of(customer: str | None) -> dict[str, str]:
    """A filter on a customer's external id, for models that name their customer."""
    return {} if customer is None else {"customer__external_id": customer}


def periods_economics(
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    customer: str | None = None,
    rated: dict[tuple[int, datetime], RatedPeriod] | None = None,
) -> list[PeriodEconomics]:
    """The customer periods overlapping [start, end) that the stored breakdowns do not
    cover: open ones, live as of `now`, and closed ones whose breakdown is not made yet;
    of one customer only when `customer` is given (a filtered report rates no other).
    (Closed periods with their breakdown are summed in SQL: _closed_parts.) `rated`: open
    periods the caller rated already (_open_periods)."""
    return _unbroken_down_periods(start=start, end=end, customer=customer) + _open_periods(
        start=start, end=end, now=now, customer=customer, rated=rated
    )


# Invoices whose amount is not revenue: voided, or given up on. Their calls still cost.
WRITTEN_OFF = (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)

# Closed periods with their breakdown, summed in SQL per reporting key and per currency
# and period start (what FX needs). {key} is the grouping column.
_CLOSED_SQL = """
SELECT i.currency, extract(epoch FROM i.period_start)::bigint, {key} AS key,
       coalesce(sum(c.revenue) FILTER (WHERE NOT i.status = ANY(%(written_off)s)), 0),
       coalesce(sum(c.revenue) FILTER (WHERE i.status = ANY(%(written_off)s)), 0),
       coalesce(sum(c.discount) FILTER (WHERE NOT i.status = ANY(%(written_off)s)), 0),
       sum(c.cost), coalesce(sum(c.cost) FILTER (WHERE c.outcome_type <> ''), 0),
       sum(c.calls)::bigint, sum(c.tokens)::bigint, sum(c.unpriced_calls)::bigint,
       bool_or(c.feature = ANY(pv.included_features))
FROM billing_reconciliationcell c
JOIN billing_invoice i ON i.id = c.invoice_id
JOIN billing_reconciliation r ON r.invoice_id = i.id AND r.breakdown_at IS NOT NULL
JOIN billing_planversion pv ON pv.id = i.plan_version_id
JOIN metering_customer cu ON cu.id = i.customer_id
WHERE i.period_start < %(end)s AND i.period_end > %(start)s AND i.replaced_by_id IS NULL
  AND (%(customer)s::text IS NULL OR cu.external_id = %(customer)s)
  AND (%(outcome_type)s::text IS NULL OR c.outcome_type = %(outcome_type)s)
  AND (%(model)s::text IS NULL OR c.model = %(model)s
       OR c.provider || ':' || c.model = %(model)s)
  AND (%(feature)s::text IS NULL OR c.feature = %(feature)s)
  AND (%(tier)s::text IS NULL OR c.tier = %(tier)s)
GROUP BY 2, {group}, 1
"""
_PERIOD_KEY = "extract(epoch FROM i.period_start)::bigint::text"
_MODEL_KEY = (
    "CASE WHEN c.provider <> '' OR c.model <> '' THEN c.provider || ':' || c.model ELSE '' END"
)
_KEYS = {
    "customer": "cu.external_id",
    "outcome_type": "c.outcome_type",
    "model": _MODEL_KEY,
    "feature": "c.feature",
    "tier": "c.tier",
    # The dashboard's waterfall: the calls of features a plan gives away on their own,
    # every other call by model.
    PERIOD: _PERIOD_KEY,
    WATERFALL: f"CASE WHEN c.feature = ANY(pv.included_features) THEN '{INCLUDED_KEY}' "
    f"ELSE {_MODEL_KEY} END",
}
# The same by customer without a filter on the calls, from the breakdown's sums on each
# period's row (one row a period, not its cells), with its outcome counts: periods with a
# cell or an outcome, as above.
_CLOSED_PERIODS_SQL = """
SELECT i.currency, extract(epoch FROM i.period_start)::bigint, cu.external_id AS key,
       coalesce(sum(r.breakdown_revenue) FILTER (WHERE NOT i.status = ANY(%(written_off)s)), 0),
       coalesce(sum(r.breakdown_revenue) FILTER (WHERE i.status = ANY(%(written_off)s)), 0),
       coalesce(sum(r.breakdown_discount) FILTER (WHERE NOT i.status = ANY(%(written_off)s)), 0),
       sum(r.inference_cost), sum(r.outcome_cost),
       sum(r.calls)::bigint, sum(r.tokens)::bigint, sum(r.unpriced_calls)::bigint, false,
       sum(o.succeeded)::bigint, sum(o.failed)::bigint, sum(o.reversed)::bigint
FROM billing_reconciliation r
JOIN billing_invoice i ON i.id = r.invoice_id
JOIN metering_customer cu ON cu.id = i.customer_id
CROSS JOIN LATERAL (
    SELECT coalesce(sum((counts->>0)::bigint), 0) AS succeeded,
           coalesce(sum((counts->>1)::bigint), 0) AS failed,
           coalesce(sum((counts->>2)::bigint), 0) AS reversed
    FROM jsonb_each(r.outcomes) AS each(type, counts)
) AS o
WHERE r.breakdown_at IS NOT NULL AND i.period_start < %(end)s AND i.period_end > %(start)s
  AND i.replaced_by_id IS NULL
  AND (%(customer)s::text IS NULL OR cu.external_id = %(customer)s)
  AND (r.outcomes <> '{}'::jsonb
       OR EXISTS (SELECT FROM billing_reconciliationcell c WHERE c.invoice_id = r.invoice_id))
GROUP BY 2, cu.id, 1
"""
# Customers are grouped by id, which sorts as an integer: ten thousand external ids sorted
# as text under a collation cost more than the rest of the query.
_GROUPS = {"customer": "cu.id"}
# Their outcomes per type (stored with the breakdown).
_CLOSED_OUTCOMES_SQL = """
SELECT {key} AS key, sum((o.counts->>0)::bigint), sum((o.counts->>1)::bigint),
       sum((o.counts->>2)::bigint)
FROM billing_reconciliation r
JOIN billing_invoice i ON i.id = r.invoice_id
JOIN metering_customer cu ON cu.id = i.customer_id
CROSS JOIN LATERAL jsonb_each(r.outcomes) AS o(type, counts)
WHERE r.breakdown_at IS NOT NULL AND i.period_start < %(end)s AND i.period_end > %(start)s
  AND i.replaced_by_id IS NULL
  AND (%(customer)s::text IS NULL OR cu.external_id = %(customer)s)
  AND (%(outcome_type)s::text IS NULL OR o.type = %(outcome_type)s)
GROUP BY {group}
"""


class _Part(NamedTuple):
    """What some calls of one period add to one row of the report (a tuple in the order
    of _CLOSED_SQL's columns: its rows are made into parts as they come)."""

    currency: str  # of the revenue
    at: datetime  # the period's start: the FX rates' moment
    key: str
    revenue: Decimal
    written_off: Decimal  # billed on a void or uncollectible invoice: not revenue
    discount: Decimal  # promotional credits the revenue is net of
    cost: Decimal
    outcome_cost: Decimal
    calls: int
    tokens: int
    unpriced_calls: int
    included: bool


def _closed_parts(
    *, start: datetime, end: datetime, group_by: str, filters: MarginFilters
) -> tuple[list[_Part], list[tuple[str, int, int, int]], int]:
    """The broken-down closed periods' parts, their outcome counts (key, succeeded,
    failed, reversed) and the number of closed periods in the window."""
    params = {
        "start": start,
        "end": end,
        "customer": filters.customer,
        "outcome_type": filters.outcome_type,
        "model": filters.model,
        "feature": filters.feature,
        "tier": filters.tier,
        "written_off": list(WRITTEN_OFF),
    }
    # By customer with no filter on the calls: each period's row, its outcomes included.
    from_rows = group_by == "customer" and _outcomes_follow(filters) and not filters.outcome_type
    with reading().cursor() as cursor:
        cursor.execute(
            _CLOSED_PERIODS_SQL
            if from_rows
            else _CLOSED_SQL.format(key=_KEYS[group_by], group=_GROUPS.get(group_by, "3")),
            params,
        )
        moments: dict[int, datetime] = {}  # the periods' starts, as seconds (fewer to parse)
        parts = []
        outcomes: list[tuple[str, int, int, int]] = []
        for currency, epoch, *figures in cursor.fetchall():
            at = moments.get(epoch)
            if at is None:
                at = moments[epoch] = datetime.fromtimestamp(epoch, UTC)
            parts.append(_Part(currency, at, *figures[:10]))
            if from_rows:  # its outcomes: succeeded, failed, reversed
                outcomes.append((figures[0], *figures[10:]))
        if not from_rows and group_by in WITH_OUTCOMES and _outcomes_follow(filters):
            key, group = {
                "customer": ("cu.external_id", "cu.id"),
                "outcome_type": ("o.type", "1"),
                PERIOD: (_PERIOD_KEY, "1"),
            }[group_by]
            cursor.execute(_CLOSED_OUTCOMES_SQL.format(key=key, group=group), params)
            outcomes = [(k, int(s), int(f), int(r)) for k, s, f, r in cursor.fetchall()]
    closed = (
        Invoice.objects.standing()
        .filter(period_start__lt=end, period_end__gt=start, **_of(filters.customer))
        .count()
    )
    return parts, outcomes, closed


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MissingRate:
    currency: str
    at: datetime


@dataclass(slots=True)
class MarginRow:
    key: str
    revenue: Decimal | None = ZERO  # reporting currency; None: a rate is missing
    # Billed on void and uncollectible invoices (reporting currency): not revenue, while
    # their calls still count as cost.
    written_off: Decimal | None = ZERO
    # Promotional credits used (reporting currency): a discount the revenue is net of.
    discount: Decimal | None = ZERO
    # Reporting currency: the priced calls' cost (see cost_status and known_cost).
    inference_cost: Decimal | None = ZERO
    calls: int = 0
    tokens: int = 0
    unpriced_calls: int = 0
    outcome_cost: Decimal | None = ZERO  # of calls linked to outcomes
    # Outcome counts exist per customer and outcome type only (an outcome's calls may
    # span models, features and tiers).
    succeeded: int | None = None
    failed: int | None = None
    reversed: int | None = None
    # Of the outcomes that succeeded in the window: how many were disputed, and how many
    # had a dispute accepted (reversed, credited). Per customer and outcome type too.
    disputed: int | None = None
    disputes_accepted: int | None = None
    revenue_by_currency: dict[str, Decimal] = field(default_factory=dict)
    included: bool = False  # a feature some plan gives away
    # (Immutable: ten thousand rows share the empty one, rather than a set each.)
    missing_rates: frozenset[MissingRate] = frozenset()

    @property
    def cost_status(self) -> CostStatus:
        return cost_status(calls=self.calls, unpriced_calls=self.unpriced_calls)

    @property
    def known_cost(self) -> Decimal | None:
        """The inference cost, or None where it is unknown (every call unpriced, or an FX
        rate missing)."""
        return None if self.cost_status == CostStatus.UNKNOWN else self.inference_cost

    @property
    def dispute_rate_percent(self) -> Decimal | None:
        """Disputed outcomes per hundred that succeeded in the window (those reversed since
        included): are we charging for real outcomes?"""
        if self.disputed is None or self.succeeded is None:
            return None
        succeeded = self.succeeded + (self.reversed or 0)
        if not succeeded:
            return None
        return (Decimal(100) * self.disputed / succeeded).quantize(Decimal("0.01"))

    @property
    def margin(self) -> Decimal | None:
        return margin_of_revenue(self.revenue, self.known_cost)[0]

    @property
    def margin_percent(self) -> Decimal | None:
        return margin_of_revenue(self.revenue, self.known_cost)[1]

    @property
    def cost_per_success(self) -> Decimal | None:
        if not self.succeeded or self.outcome_cost is None:
            return None
        return (self.outcome_cost / self.succeeded).quantize(EXACT)


@dataclass(frozen=True, slots=True)
class MarginFilters:
    customer: str | None = None
    outcome_type: str | None = None
    model: str | None = None  # "model" or "provider:model"
    feature: str | None = None
    tier: str | None = None

    def keeps(self, customer: str, cell: Cell) -> bool:
        if self.customer is not None and customer != self.customer:
            return False
        if self.outcome_type is not None and cell.outcome_type != self.outcome_type:
            return False
        if self.model is not None and self.model not in (
            cell.model,
            f"{cell.provider}:{cell.model}",
        ):
            return False
        if self.feature is not None and cell.feature != self.feature:
            return False
        return self.tier is None or cell.tier == self.tier


@dataclass(slots=True)
class MarginReport:
    currency: str
    group_by: str
    rows: list[MarginRow]
    totals: MarginRow
    closed_periods: int
    open_periods: int
    missing_rates: frozenset[MissingRate]


def _key(group_by: str, period: PeriodEconomics, cell: Cell) -> str:
    if group_by == "customer":
        return period.customer
    if group_by == PERIOD:
        return period_key(period.start)
    if group_by == WATERFALL and cell.feature in period.included_features:
        return INCLUDED_KEY
    if group_by in ("model", WATERFALL):
        return f"{cell.provider}:{cell.model}" if cell.provider or cell.model else ""
    return str(getattr(cell, group_by))


def period_key(start: datetime) -> str:
    """A period's key in the PERIOD grouping: its start, in epoch seconds."""
    return str(int(start.timestamp()))


def _add(target: Decimal | None, amount: Decimal | None) -> Decimal | None:
    return None if target is None or amount is None else target + amount


def margins_report(
    *,
    start: datetime,
    end: datetime,
    group_by: str,
    filters: MarginFilters,
    now: datetime,
    currency: str | None = None,
    economics: list[PeriodEconomics] | None = None,
) -> MarginReport:
    """Revenue, inference cost and margin over [start, end) grouped by `group_by`, in the
    reporting currency (setting REPORTING_CURRENCY) at the rates valid at each period's
    start. A figure that needs a rate nobody entered is None, and the rate is named.
    `economics`: periods_economics of the window (of filters.customer), when the caller
    reads several reports of it and rates its open periods once."""
    currency = currency or settings.REPORTING_CURRENCY
    rows: dict[str, MarginRow] = {}
    totals = MarginRow(key="")
    periods = (
        periods_economics(start=start, end=end, now=now, customer=filters.customer)
        if economics is None
        else [p for p in economics if p.start < end and p.end > start]
    )
    factors: dict[tuple[str, datetime], tuple[Decimal | None, frozenset[MissingRate]]] = {}

    def convert(
        amount: Decimal, source: str, at: datetime
    ) -> tuple[Decimal | None, frozenset[MissingRate]]:
        """`amount` of `source` in the reporting currency at the rates valid at `at`, and
        the rates that were missing for it."""
        if source == currency:
            return amount, frozenset()
        if (source, at) not in factors:
            source_usd = usd_per_unit(currency=source, at=at)
            target_usd = usd_per_unit(currency=currency, at=at)
            lacking = frozenset(
                MissingRate(code, at)
                for code, found in ((source, source_usd), (currency, target_usd))
                if found is None
            )
            factor = None if lacking else source_usd / target_usd  # type: ignore[operator]
            factors[(source, at)] = (factor, lacking)
        factor, lacking = factors[(source, at)]
        return (None if factor is None else (amount * factor).quantize(EXACT)), lacking

    parts, outcome_counts, closed = _closed_parts(
        start=start, end=end, group_by=group_by, filters=filters
    )
    for period in periods:
        for cell in period.cells:
            if filters.keeps(period.customer, cell):
                parts.append(
                    _Part(
                        period.currency,
                        period.start,
                        _key(group_by, period, cell),
                        ZERO if period.written_off else cell.revenue,
                        cell.revenue if period.written_off else ZERO,
                        ZERO if period.written_off else cell.discount,
                        cell.cost,
                        cell.cost if cell.outcome_type else ZERO,
                        cell.calls,
                        cell.tokens,
                        cell.unpriced_calls,
                        cell.feature in period.included_features,
                    )
                )
        if group_by in WITH_OUTCOMES and _outcomes_follow(filters):
            for outcome_type, (succeeded, failed, reversed_) in period.outcomes.items():
                if filters.customer not in (None, period.customer):
                    continue
                if filters.outcome_type not in (None, outcome_type):
                    continue
                key = {
                    "customer": period.customer,
                    "outcome_type": outcome_type,
                    PERIOD: period_key(period.start),
                }[group_by]
                outcome_counts.append((key, succeeded, failed, reversed_))
    for part in parts:
        row = rows.get(part.key)
        if row is None:
            row = rows[part.key] = MarginRow(key=part.key)
        if part.currency == currency == "USD" and not row.missing_rates:
            # Nothing to convert, and no figure of the row unknown: the common case, plain.
            row.revenue += part.revenue  # type: ignore[operator]
            row.written_off += part.written_off  # type: ignore[operator]
            row.discount += part.discount  # type: ignore[operator]
            row.inference_cost += part.cost  # type: ignore[operator]
            row.outcome_cost += part.outcome_cost  # type: ignore[operator]
        else:
            revenue, revenue_lacking = convert(part.revenue, part.currency, part.at)
            written_off, _ = convert(part.written_off, part.currency, part.at)
            discount, _ = convert(part.discount, part.currency, part.at)
            cost, cost_lacking = convert(part.cost, "USD", part.at)
            outcome_cost, _ = convert(part.outcome_cost, "USD", part.at)
            row.missing_rates |= revenue_lacking | cost_lacking
            row.revenue = _add(row.revenue, revenue)
            row.written_off = _add(row.written_off, written_off)
            row.discount = _add(row.discount, discount)
            row.inference_cost = _add(row.inference_cost, cost)
            row.outcome_cost = _add(row.outcome_cost, outcome_cost)
        row.calls += part.calls
        row.tokens += part.tokens
        row.unpriced_calls += part.unpriced_calls
        if part.revenue:
            row.revenue_by_currency[part.currency] = (
                row.revenue_by_currency.get(part.currency, ZERO) + part.revenue
            )
        if group_by == "feature" and part.included:
            row.included = True
    for key, succeeded, failed, reversed_ in outcome_counts:
        row = rows.get(key)
        if row is None:  # (not setdefault: a row made for every count, and mostly dropped)
            row = rows[key] = MarginRow(key=key)
        row.succeeded = (row.succeeded or 0) + succeeded
        row.failed = (row.failed or 0) + failed
        row.reversed = (row.reversed or 0) + reversed_
    # The totals: the rows summed once (not each part added twice).
    for row in rows.values():
        totals.missing_rates |= row.missing_rates
        totals.revenue = _add(totals.revenue, row.revenue)
        totals.written_off = _add(totals.written_off, row.written_off)
        totals.discount = _add(totals.discount, row.discount)
        totals.inference_cost = _add(totals.inference_cost, row.inference_cost)
        totals.outcome_cost = _add(totals.outcome_cost, row.outcome_cost)
        totals.calls += row.calls
        totals.tokens += row.tokens
        totals.unpriced_calls += row.unpriced_calls
        for code, amount in row.revenue_by_currency.items():
            totals.revenue_by_currency[code] = totals.revenue_by_currency.get(code, ZERO) + amount
        if row.succeeded is not None:
            totals.succeeded = (totals.succeeded or 0) + row.succeeded
            totals.failed = (totals.failed or 0) + (row.failed or 0)
            totals.reversed = (totals.reversed or 0) + (row.reversed or 0)
    if group_by == PERIOD:  # counted, never disputed by period
        for row in (*rows.values(), totals):
            row.succeeded, row.failed, row.reversed = (
                row.succeeded or 0,
                row.failed or 0,
                row.reversed or 0,
            )
    elif group_by in ("customer", "outcome_type"):
        disputes = (
            dispute_counts(
                start=start, end=end, by="customer" if group_by == "customer" else "type",
                customer=filters.customer, outcome_type=filters.outcome_type,
            )
            if _outcomes_follow(filters)
            else {}
        )  # fmt: skip
        for row in (*rows.values(), totals):
            row.succeeded, row.failed, row.reversed = (
                row.succeeded or 0,
                row.failed or 0,
                row.reversed or 0,
            )
            row.disputed, row.disputes_accepted = disputes.get(row.key, (0, 0))
        totals.disputed = sum(disputed for disputed, _ in disputes.values())
        totals.disputes_accepted = sum(accepted for _, accepted in disputes.values())
    else:
        totals.succeeded = totals.failed = totals.reversed = None
    return MarginReport(
        currency=currency,
        group_by=group_by,
        rows=sorted(rows.values(), key=lambda row: row.key),
        totals=totals,
        closed_periods=closed,
        open_periods=sum(1 for p in periods if not p.closed),
        missing_rates=totals.missing_rates,
    )


def _outcomes_follow(filters: MarginFilters) -> bool:
    """Outcome counts follow the customer and outcome type filters; a filter on a call's
    model, feature or tier leaves them out (outcomes have no model, feature or tier)."""
    return filters.model is None and filters.feature is None and filters.tier is None
