"""The one rating pipeline: what a customer period bills, as a close's snapshot sees it or
as things stand now. The close (billing/invoicing/services/closing.py), the invoice preview
(GET /v1/customers/{id}/usage), the live margins of open periods and the margin breakdown
of closed ones all read here, so a preview taken just before a close is the invoice it
makes, line for line.

- Quantities: one reader per kind of fact, for many windows (customer, start, end,
  snapshot) at once: succeeded outcomes per type and their value fees (one percentage
  clamp, one FX conversion), the calls' cost per feature and active seats
  (billing/invoicing/selectors/cells.py), fixed seats (billing/plans/selectors.py).
- Rating: billing/plans/pricing.py, pure.
- Late usage and credits: each earlier invoiced period whose facts changed since the
  customer's last close, rated as of now (or this close) and as of that last close; the
  difference, line by line, is what this invoice adds (billing/plans/pricing.rate_changes;
  what "seen" means: billing/invoicing/watermark.py).
- Prepaid credits: what the customer's grants live in the period pay of it, drawn in
  their order (billing/credits/drawdown.py), as the invoice's last line.

One module of about 600 lines on purpose: it is the single place every caller reads a
period's quantities from; split, the readers would drift apart again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q

from billing.credits.drawdown import (
    CreditReturn,
    Draw,
    balances_with_returns,
    credits_draw,
    credits_lines,
    credits_returns,
    returns_lines,
)
from billing.credits.selectors import credits_of_versions, source_draws, usable_balances
from billing.invoicing.fx import FxRateNeeded
from billing.invoicing.models import Invoice
from billing.invoicing.selectors.cells import (
    WINDOWS,
    Cell,
    CostStatus,
    PeriodUsage,
    Window,
    WindowsSql,
    cells_difference,
    cost_status,
    window_set,
    windows_usage,
)
from billing.invoicing.selectors.invoices import periods_due
from billing.invoicing.selectors.running import running_outcomes, running_window
from billing.invoicing.watermark import call_priced, call_recorded, outcome_billable
from billing.money import from_minor_units, margin_of_revenue
from billing.plans.models import PlanVersion, PriceModel, SeatMode, Subscription
from billing.plans.pricing import (
    OutcomeQuantity,
    OutcomeTerms,
    PeriodQuantities,
    PlanTerms,
    RatedInvoice,
    RatedLine,
    rate_changes,
    rate_period,
)
from billing.plans.selectors import (
    FixedSeats,
    fixed_seats_many,
    period_of,
    plan_terms,
    plan_version_current,
    plans_in_effect,
    subscription_of,
)
from common.lookups import AnyOf  # noqa: F401 -- registers field__any_of
from common.replicas import reading
from metering.models import Customer

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
INFERENCE_COST_CURRENCY = "USD"


def _window_outcomes(windows: WindowsSql, lateral: str = "") -> str:
    """SQL: FROM and WHERE of the outcomes of each window that succeeded in it and are
    billable as its snapshot sees them. (The windows' customers and overall range too,
    so that the scan can use them.)"""
    return f"""
FROM outcomes_outcome o
{windows.join("o")}
{lateral}
WHERE o.customer_id = ANY(%(customers)s) AND o.succeeded_at >= %(first_start)s
  AND o.succeeded_at < %(last_end)s AND {windows.within("o.succeeded_at")}
  AND {outcome_billable(windows.snapshot)}
"""


# shared window -> the query
_SUCCEEDED_SQLS = {
    shared: f"SELECT {windows.key('o')}, o.type, count(*) {_window_outcomes(windows)} GROUP BY 1, 2"
    for shared, windows in WINDOWS.items()
}

# A unit's value in the plan's currency (`o` an outcome, `rates` VALUE_RATES_SQL's): to 12
# places, converted at the rates of the moment it succeeded. NULL: it has no value, or a
# rate it needs was never entered.
CONVERTED_VALUE_SQL = """round(CASE WHEN o.value_currency = %(currency)s THEN o.value
    ELSE o.value * rates.value_rate / rates.plan_rate END, 12)"""

# The fee of one billable unit of a percentage price, from its converted value (`converted`)
# and the value of the billable units before it in the period (`before`): the one fee of
# every rating (and of the statement's outcomes). The free value (%(free_value)s, 0 for
# none) comes first: a unit wholly within it pays nothing; the unit that crosses it pays
# on the part above it. Otherwise the percentage of the value charged plus the fixed fee
# per unit, clamped to [floor, cap]. A unit without a value counts as a value of 0 (it
# pays its fixed fee, or the floor; never the cap unless the fixed fee is above it).
# GREATEST and LEAST skip NULLs: a missing floor or cap is no bound.
PERCENTAGE_FEE_SQL = """CASE
    WHEN before < %(free_value)s AND before + coalesce(converted, 0) <= %(free_value)s THEN 0
    ELSE LEAST(GREATEST(
        GREATEST(coalesce(converted, 0) - GREATEST(%(free_value)s - before, 0), 0)
            * %(percentage)s / 100 + %(fixed_fee)s,
        %(floor)s), %(cap)s)
    END"""


def percentage_params(outcome: OutcomeTerms, currency: str) -> dict[str, object]:
    """PERCENTAGE_FEE_SQL's and CONVERTED_VALUE_SQL's parameters for a percentage price."""
    return {
        "currency": currency,
        "percentage": outcome.percentage or ZERO,  # (none: a graduated percentage's tiers)
        "fixed_fee": outcome.fixed_fee or ZERO,
        "free_value": outcome.free_value or ZERO,
        "floor": outcome.floor,
        "cap": outcome.cap,
        "included": outcome.included_quantity,
    }


def _usd_per_unit(currency: str) -> str:
    """SQL: what one unit of `currency` was worth in USD when the outcome succeeded (NULL:
    nobody entered a rate for then). The rule of billing/invoicing/fx.py: the latest rate in
    effect."""
    return f"""CASE WHEN {currency} = 'USD' THEN 1::numeric ELSE (
        SELECT r.usd_per_unit FROM billing_fxrate r
        WHERE r.currency = {currency} AND r.effective_from <= o.succeeded_at
        ORDER BY r.effective_from DESC LIMIT 1) END"""  # noqa: S608 -- a constant's SQL


# The rates a value in another currency than the plan's is converted with (the statement
# of an invoice converts its outcomes' values with them too: billing/statements).
VALUE_RATES_SQL = f"""CROSS JOIN LATERAL (
    SELECT {_usd_per_unit("o.value_currency")} AS value_rate,
           {_usd_per_unit("%(currency)s")} AS plan_rate) AS rates"""


def _value_fees_sql(windows: WindowsSql) -> str:
    """The value fees of one percentage price in each window: each billable unit past the
    included ones (the first N by time of success) at its fee (PERCENTAGE_FEE_SQL, the
    free value counted from the first of them), and their value (what the tiers of a
    graduated percentage rate). A value in another currency than the
    plan's is converted at the rates of the moment it succeeded, to 12 places; without a
    rate its fee is unknown: nothing is billed for it, and the currency and day are
    returned."""
    return f"""
SELECT key, coalesce(sum({PERCENTAGE_FEE_SQL}) FILTER (WHERE NOT missing), 0),
       coalesce(sum(converted) FILTER (WHERE NOT missing), 0),
       array_agg(DISTINCT value_currency || ' ' || day)
           FILTER (WHERE missing AND value_rate IS NULL),
       array_agg(DISTINCT %(currency)s || ' ' || day) FILTER (WHERE missing AND plan_rate IS NULL)
FROM (
    SELECT *, coalesce(sum(coalesce(converted, 0)) OVER (
               PARTITION BY key ORDER BY succeeded_at, id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
    FROM (
        SELECT {windows.key("o")} AS key, o.id, o.succeeded_at, o.value, o.value_currency,
               rates.value_rate, rates.plan_rate,
               (o.succeeded_at AT TIME ZONE 'UTC')::date::text AS day,
               {CONVERTED_VALUE_SQL} AS converted,
               o.value IS NOT NULL AND {CONVERTED_VALUE_SQL} IS NULL AS missing,
               row_number() OVER (PARTITION BY {windows.key("o")} ORDER BY o.succeeded_at, o.id)
                   AS position
        {_window_outcomes(windows, lateral=VALUE_RATES_SQL)} AND o.type = %(type)s
    ) AS units
    WHERE position > %(included)s
) AS fees
GROUP BY key
"""  # noqa: S608 -- built from constants


# shared window -> the query
_VALUE_FEES_SQLS = {shared: _value_fees_sql(windows) for shared, windows in WINDOWS.items()}


# The value of an outcome's dimension: its property as text (a number 2 is "2"); NULL
# when it has none.
DIMENSION_VALUE_SQL = "o.properties ->> %(dimension)s"


def _dimension_counts_sql(windows: WindowsSql) -> str:
    """The billable units of one price by dimension in each window (past the included
    ones, the first N by time of success), per value the prices name; any other value,
    or none, is "" (it pays the price of any other)."""
    return f"""
SELECT key, CASE WHEN value = ANY(%(values)s) THEN value ELSE '' END, count(*)
FROM (
    SELECT {windows.key("o")} AS key, {DIMENSION_VALUE_SQL} AS value,
           row_number() OVER (PARTITION BY {windows.key("o")} ORDER BY o.succeeded_at, o.id)
               AS position
    {_window_outcomes(windows)} AND o.type = %(type)s
) AS units
WHERE position > %(included)s
GROUP BY 1, 2
"""  # noqa: S608 -- built from constants


_DIMENSION_COUNTS_SQLS = {
    shared: _dimension_counts_sql(windows) for shared, windows in WINDOWS.items()
}


@dataclass(slots=True)
class WindowOutcomes:
    """The succeeded outcomes of one window per type, and the FX rates their fees need
    and nobody entered (non-empty: the window cannot be billed yet)."""

    quantities: dict[str, OutcomeQuantity] = field(default_factory=dict)
    missing_rates: set[FxRateNeeded] = field(default_factory=set)


def outcome_quantities(
    *, windows: Sequence[Window], terms: dict[Window, PlanTerms], running: bool = True
) -> dict[Window, WindowOutcomes]:
    """Succeeded outcomes per window and type as each window's snapshot sees them (reversed
    ones no longer count), and the value fees of percentage-priced types: one query for
    the counts, one per percentage price shared by windows, whatever their number. Counts
    as of now come from the running rollup unless `running` is false (as windows_usage)."""
    found = {window: WindowOutcomes() for window in windows}
    if not windows:
        return found
    listed = window_set(windows)
    if running and all(window.snapshot is None for window in listed.windows):
        for key, outcome_type, succeeded, _, _ in running_outcomes(
            windows=[running_window(w.customer_id, w.start, w.end) for w in listed.windows]
        ):
            if succeeded:
                found[listed.windows[key - 1]].quantities[outcome_type] = OutcomeQuantity(succeeded)
    else:
        with reading().cursor() as cursor:
            cursor.execute(_SUCCEEDED_SQLS[listed.sql.shared], listed.params)
            for key, outcome_type, count in cursor.fetchall():
                found[listed.of(key)].quantities[outcome_type] = OutcomeQuantity(count)
    with reading().cursor() as cursor:
        # Windows sharing one percentage price (and currency), or one price by dimension,
        # get one query.
        shared: dict[tuple[str, OutcomeTerms], list[Window]] = defaultdict(list)
        by_dimension: dict[OutcomeTerms, list[Window]] = defaultdict(list)
        for window in listed.windows:
            plan = terms[window]
            for outcome in plan.outcomes:
                count = found[window].quantities.get(outcome.outcome_type, OutcomeQuantity(0))
                if count.succeeded <= outcome.included_quantity:
                    continue
                if outcome.model == PriceModel.PERCENTAGE:
                    shared[(plan.currency, outcome)].append(window)
                elif outcome.dimension:
                    by_dimension[outcome].append(window)
        for outcome, members in by_dimension.items():
            some = window_set(members)
            cursor.execute(
                _DIMENSION_COUNTS_SQLS[some.sql.shared],
                some.params
                | {
                    "type": outcome.outcome_type,
                    "dimension": outcome.dimension,
                    "values": [value for value, _ in outcome.dimension_prices],
                    "included": outcome.included_quantity,
                },
            )
            groups: dict[Window, dict[str, int]] = defaultdict(dict)
            for key, value, count in cursor.fetchall():
                groups[some.of(key)][value] = count
            for window, counts in groups.items():
                quantities = found[window].quantities
                quantities[outcome.outcome_type] = replace(
                    quantities[outcome.outcome_type], by_value=tuple(sorted(counts.items()))
                )
        for (currency, outcome), members in shared.items():
            some = window_set(members)
            cursor.execute(
                _VALUE_FEES_SQLS[some.sql.shared],
                some.params | percentage_params(outcome, currency) | {"type": outcome.outcome_type},
            )
            for key, fees, value, *needed in cursor.fetchall():
                window = some.of(key)
                count = found[window].quantities[outcome.outcome_type].succeeded
                found[window].quantities[outcome.outcome_type] = OutcomeQuantity(count, fees, value)
                for text in [*(needed[0] or ()), *(needed[1] or ())]:
                    code, day = text.split(" ")
                    found[window].missing_rates.add(FxRateNeeded(code, date.fromisoformat(day)))
    return found


def rating_quantities(
    *,
    terms: PlanTerms,
    outcomes: dict[str, OutcomeQuantity],
    usage: PeriodUsage,
    fixed: FixedSeats,
) -> PeriodQuantities:
    """What rating needs of one customer's period, from the aggregates read for it."""
    by_call = usage.cost_by_call if terms.pass_through_by else {}
    if terms.seat_mode == SeatMode.ACTIVE:
        return PeriodQuantities(
            outcomes=outcomes,
            seats=usage.active_seats,
            cost_by_feature=usage.cost_by_feature,
            cost_by_call=by_call,
        )
    return PeriodQuantities(
        outcomes=outcomes,
        seats=fixed.seats,
        cost_by_feature=usage.cost_by_feature,
        cost_by_call=by_call,
        seat_days=fixed.seat_days,
        period_days=fixed.period_days,
    )


@dataclass(frozen=True, slots=True)
class LateChange:
    """What changed about an earlier invoiced period since the customer's last close."""

    source: Invoice  # the invoice of that period
    lines: tuple[RatedLine, ...]  # late usage and credits (rate_changes)
    cells: list[Cell]  # the calls that arrived or were priced since (cells_difference)


@dataclass(frozen=True, slots=True)
class RatedPeriod:
    subscription: Subscription
    version: PlanVersion
    terms: PlanTerms
    usage: PeriodUsage  # the period's own calls
    # Everything the period's close bills: its own lines, then late usage and credits of
    # the periods before (oldest first).
    invoice: RatedInvoice
    late: tuple[LateChange, ...]
    # Rates the fees need and nobody entered: the period cannot be billed until they are.
    missing_rates: frozenset[FxRateNeeded]
    # What the customer's prepaid credits pay of the invoice, grant by grant (the
    # invoice's last line; billing/credits).
    prepaid: tuple[Draw, ...] = ()
    # Credits of earlier periods going back to the grants that had paid them.
    returns: tuple[CreditReturn, ...] = ()
    # What the credits live in the period hold (minor units of the invoice's currency),
    # with what came back: what the draws were made from.
    credit_balance: int = 0
    # What its own lines were rated on (billing/limits prices more outcomes with them).
    quantities: PeriodQuantities | None = None

    @property
    def cells(self) -> list[Cell]:
        """The calls this invoice covers: its period's, and those that arrived late for
        earlier periods (cost follows revenue)."""
        return self.usage.cells + [cell for change in self.late for cell in change.cells]

    @property
    def inference_cost(self) -> Decimal:
        return sum((cell.cost for cell in self.cells), ZERO)

    @property
    def calls(self) -> int:
        return sum(cell.calls for cell in self.cells)

    @property
    def tokens(self) -> int:
        return sum(cell.tokens for cell in self.cells)

    @property
    def unpriced_calls(self) -> int:
        return sum(cell.unpriced_calls for cell in self.cells)


def periods_rate(
    *,
    subscriptions: list[Subscription],
    start: datetime,
    end: datetime,
    snapshot: str | None,
    detail: bool = False,
    previous: dict[int, Invoice] | None = None,
    rated_on: dict[int, PlanVersion] | None = None,
) -> list[RatedPeriod]:
    """The invoices of many customers' [start, end) as `snapshot` sees things (None: now),
    each on the plan in effect at `start`, with the late usage and credits of a customer's
    earlier periods when this is the period after its last invoice: a fixed number of
    queries, whatever the number of customers. What a close bills, what the preview shows,
    and (with the calls in `detail`: by outcome type, feature, tier and model) what the
    margin report computes live for open periods. `previous`: each customer's invoice of
    the period before, when the caller has read them already. `rated_on`: the plan version
    of some customers, instead of the one in effect (a reissue's corrected price)."""
    plan_ids = plans_in_effect(subscriptions=subscriptions, moment=start)
    versions = {
        plan_id: plan_version_current(plan_id=plan_id) for plan_id in set(plan_ids.values())
    }
    version_of = {s.customer_id: versions[plan_ids[s.pk]] for s in subscriptions}
    version_of.update(rated_on or {})
    terms_of_version = {
        version.pk: plan_terms(version=version)
        for version in {v for v in version_of.values() if v is not None}
    }
    windows = {s.customer_id: Window(s.customer_id, start, end, snapshot) for s in subscriptions}
    terms = {
        windows[customer_id]: terms_of_version[version.pk]
        for customer_id, version in version_of.items()
        if version is not None
    }
    # (A markup by a property of the call needs the calls by tier and model.)
    by_call = any(plan.pass_through_by for plan in terms.values())
    usage = windows_usage(windows=list(windows.values()), detail=detail or by_call)
    outcomes = outcome_quantities(windows=list(windows.values()), terms=terms)
    seats = fixed_seats_many(subscriptions=subscriptions, start=start, end=end)
    if previous is None:
        previous = previous_invoices(customer_ids=list(windows), before=start)
    late = late_changes(
        subscriptions=[s for s in subscriptions if s.customer_id in previous],
        previous=previous,
        snapshot=snapshot,
        detail=detail,
    )
    balances = usable_balances(
        customer_ids=list(windows),
        start=start,
        end=end,
        planned=credits_of_versions(
            versions=version_of,
            start=start,
            end=end,
        ),
    )
    paid_by_credits = source_draws(
        source_invoice_ids=[c.source.pk for changes, _ in late.values() for c in changes],
        start=start,
        end=end,
    )
    rated = []
    for subscription in subscriptions:
        window = windows[subscription.customer_id]
        version = version_of[subscription.customer_id]
        assert version is not None, "a subscribed plan has a version"
        quantities = rating_quantities(
            terms=terms[window],
            outcomes=outcomes[window].quantities,
            usage=usage[window],
            fixed=seats[subscription.pk],
        )
        own = rate_period(terms[window], quantities)
        changes, late_missing = late.get(subscription.customer_id, ((), frozenset()))
        late_lines = []
        for change in changes:
            if change.source.currency == own.currency:
                late_lines += change.lines
            elif change.lines:
                logger.error(
                    "ALERT: late usage of invoice %s is in %s, the next invoice of customer "
                    "%s in %s: not billed",
                    change.source.pk,
                    change.source.currency,
                    subscription.customer_id,
                    own.currency,
                )
        # A credit for a period that credits had paid goes back to them.
        returns = tuple(
            back
            for change in changes
            if change.source.currency == own.currency
            for back in credits_returns(
                -sum(line.amount for line in change.lines), change.source.pk,
                paid_by_credits.get(change.source.pk, []),
            )
        )  # fmt: skip
        billed = RatedInvoice(
            own.currency, own.lines + tuple(late_lines) + returns_lines(returns, own.currency)
        )
        # Prepaid credits pay what is billed, late usage of earlier periods included.
        usable = balances_with_returns(
            balances.get((subscription.customer_id, own.currency), []),
            returns,
            [d for back in returns for d in paid_by_credits[back.source_invoice_id]],
        )
        draws = credits_draw(billed.total, usable)
        credited = credits_lines(draws, own.currency)
        rated.append(
            RatedPeriod(
                subscription=subscription,
                version=version,
                terms=terms[window],
                usage=usage[window],
                invoice=RatedInvoice(own.currency, billed.lines + credited),
                late=tuple(changes),
                missing_rates=frozenset(outcomes[window].missing_rates | late_missing),
                prepaid=draws,
                returns=returns,
                credit_balance=sum(grant.balance for grant in usable),
                quantities=quantities,
            )
        )
    return rated


# Earlier invoiced periods of these customers holding a fact that `snapshot` (NULL: now)
# sees and the customer's last close did not: a call stored or priced since, a success or
# a reversal since. (A stamp below the last snapshot's xmin was seen by it: that bound
# lets the scan skip most rows without a visibility test.)
_CHANGED_SQL = f"""
WITH last AS (
    SELECT * FROM unnest(%(customers)s::bigint[], %(snapshots)s::text[]::pg_snapshot[],
                         %(ends)s::timestamptz[]) AS l(customer_id, snapshot, period_end)
)
SELECT DISTINCT i.id
FROM last l
JOIN outcomes_outcome o ON o.customer_id = l.customer_id
JOIN billing_invoice i ON i.customer_id = o.customer_id
     AND o.succeeded_at >= i.period_start AND o.succeeded_at < i.period_end
     AND i.replaced_by_id IS NULL
WHERE o.customer_id = ANY(%(customers)s) AND i.period_end <= l.period_end
  AND o.status IN ('succeeded', 'reversed')
  AND (o.succeeded_xid >= pg_snapshot_xmin(l.snapshot)
       OR o.reversed_xid >= pg_snapshot_xmin(l.snapshot))
  AND {outcome_billable("%(snapshot)s::pg_snapshot")}
      IS DISTINCT FROM {outcome_billable("l.snapshot")}
UNION
SELECT DISTINCT i.id
FROM last l
JOIN metering_usageevent e ON e.customer_id = l.customer_id
JOIN billing_invoice i ON i.customer_id = e.customer_id
     AND e."timestamp" >= i.period_start AND e."timestamp" < i.period_end
     AND i.replaced_by_id IS NULL
WHERE e.customer_id = ANY(%(customers)s) AND e."timestamp" < %(last_end)s
  AND i.period_end <= l.period_end
  AND (e.recorded_xid >= pg_snapshot_xmin(l.snapshot)
       OR e.priced_xid >= pg_snapshot_xmin(l.snapshot))
  AND (({call_recorded("%(snapshot)s::pg_snapshot")} AND NOT {call_recorded("l.snapshot")})
       OR ({call_priced("%(snapshot)s::pg_snapshot")} AND NOT {call_priced("l.snapshot")}))
"""  # noqa: S608 -- built from constants


def previous_invoices(*, customer_ids: list[int], before: datetime) -> dict[int, Invoice]:
    """Each customer's invoice of the period that ends at `before` (its last close, for
    the period starting there), if any."""
    return {
        invoice.customer_id: invoice
        for invoice in Invoice.objects.standing()
        .filter(period_end=before, customer_id__any_of=customer_ids)
        .only("customer_id", "snapshot", "period_start", "period_end")
    }


def late_changes(
    *,
    subscriptions: list[Subscription],
    previous: dict[int, Invoice],
    snapshot: str | None,
    detail: bool = False,
) -> dict[int, tuple[list[LateChange], frozenset[FxRateNeeded]]]:
    """Per customer, what changed about its invoiced periods between its last close (the
    invoice `previous[customer]`) and `snapshot` (None: now): each changed period rated as
    of both, and the difference. With the FX rates those ratings need and nobody entered."""
    if not previous:
        return {}
    customers = list(previous)
    with reading().cursor() as cursor:
        cursor.execute(
            _CHANGED_SQL,
            {
                "customers": customers,
                "snapshots": [previous[c].snapshot or None for c in customers],
                "ends": [previous[c].period_end for c in customers],
                "last_end": max(previous[c].period_end for c in customers),
                "snapshot": snapshot,
            },
        )
        changed = [source_id for (source_id,) in cursor.fetchall()]
    if not changed:
        return {}
    sources = list(
        Invoice.objects.filter(pk__in=changed)
        .select_related("plan_version")
        .order_by("period_start")
    )
    by_customer = {s.customer_id: s for s in subscriptions}
    version_terms: dict[int, PlanTerms] = {}
    pairs: list[tuple[Invoice, Window, Window]] = []
    terms: dict[Window, PlanTerms] = {}
    for source in sources:
        if source.plan_version_id not in version_terms:
            version_terms[source.plan_version_id] = plan_terms(version=plan_version_of(source))
        last = previous[source.customer_id]
        after = Window(source.customer_id, source.period_start, source.period_end, snapshot)
        before = Window(
            source.customer_id, source.period_start, source.period_end, last.snapshot or None
        )
        pairs.append((source, after, before))
        terms[after] = terms[before] = version_terms[source.plan_version_id]
    windows = [window for _, after, before in pairs for window in (after, before)]
    by_call = any(plan.pass_through_by for plan in terms.values())
    usage = windows_usage(windows=windows, detail=detail or by_call)
    outcomes = outcome_quantities(windows=windows, terms=terms)
    seats: dict[tuple[int, datetime], FixedSeats] = {}
    by_period: dict[tuple[datetime, datetime], list[Subscription]] = defaultdict(list)
    for source, _, _ in pairs:
        by_period[(source.period_start, source.period_end)].append(by_customer[source.customer_id])
    for (period_start, period_end), members in by_period.items():
        for subscription_id, fixed in fixed_seats_many(
            subscriptions=members, start=period_start, end=period_end
        ).items():
            seats[(subscription_id, period_start)] = fixed
    found: dict[int, tuple[list[LateChange], set[FxRateNeeded]]] = {}
    for source, after, before in pairs:
        subscription = by_customer[source.customer_id]
        fixed = seats[(subscription.pk, source.period_start)]
        rated_after, rated_before = (
            rate_period(
                terms[window],
                rating_quantities(
                    terms=terms[window],
                    outcomes=outcomes[window].quantities,
                    usage=usage[window],
                    fixed=fixed,
                ),
            )
            for window in (after, before)
        )
        changes, missing = found.setdefault(source.customer_id, ([], set()))
        missing |= outcomes[after].missing_rates | outcomes[before].missing_rates
        changes.append(
            LateChange(
                source=source,
                lines=tuple(
                    rate_changes(
                        rated_before,
                        rated_after,
                        period=f"{source.period_start:%Y-%m-%d} – {source.period_end:%Y-%m-%d}",
                        source_invoice_id=source.pk,
                    )
                ),
                cells=cells_difference(usage[after].cells, usage[before].cells),
            )
        )
    return {
        customer: (changes, frozenset(missing)) for customer, (changes, missing) in found.items()
    }


def plan_version_of(invoice: Invoice) -> PlanVersion:
    """The plan version an invoice was rated on, with its prices loaded."""
    return (
        PlanVersion.objects.select_related("plan")
        .prefetch_related("outcome_prices__tiers", "pass_throughs")
        .get(pk=invoice.plan_version_id)
    )


# --- the margin and the preview --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Margin:
    revenue: Decimal  # in the invoice currency
    inference_cost: Decimal  # USD: the priced calls the invoice covers
    currency: str
    # Comparable only when the invoice is in USD: a margin across currencies needs FX
    # rates (the margin report converts: billing/analytics/selectors/margins.py).
    comparable: bool
    margin: Decimal | None  # None: not comparable, or the cost is unknown
    margin_percent: Decimal | None
    unpriced_calls: int
    cost_status: CostStatus

    @property
    def known_cost(self) -> Decimal | None:
        """The cost, or None where every call is unpriced (never $0)."""
        return None if self.cost_status == CostStatus.UNKNOWN else self.inference_cost


def margin_of(*, period: RatedPeriod) -> Margin:
    """What the period's invoice earns against the calls it covers (its own period's and
    those that arrived late for earlier periods). Bought credits it used are revenue now
    (not when they were bought); free ones are a discount."""
    invoice = period.invoice
    prepaid = sum(d.amount for d in period.prepaid if d.paid)
    prepaid -= sum(r.amount for r in period.returns if r.paid)
    revenue = from_minor_units(invoice.total + prepaid, invoice.currency)
    status = cost_status(calls=period.calls, unpriced_calls=period.unpriced_calls)
    cost, unpriced = period.inference_cost, period.unpriced_calls
    if invoice.currency != INFERENCE_COST_CURRENCY:
        return Margin(revenue, cost, invoice.currency, False, None, None, unpriced, status)
    if status == CostStatus.UNKNOWN:
        return Margin(revenue, cost, invoice.currency, True, None, None, unpriced, status)
    margin, percent = margin_of_revenue(revenue, cost)
    return Margin(revenue, cost, invoice.currency, True, margin, percent, unpriced, status)


@dataclass(frozen=True, slots=True)
class InvoicePreview:
    """What the close of one customer period would bill were it to run now."""

    start: datetime
    end: datetime
    period: RatedPeriod | None  # None: the period is invoiced already (`invoice`)
    invoice: Invoice | None

    @property
    def margin(self) -> Margin | None:
        if self.period is None:
            return None
        return margin_of(period=self.period)


def invoice_preview(
    *, customer: Customer, moment: datetime, detail: bool = False
) -> InvoicePreview | None:
    """The customer's billing period that holds `moment`, rated now through the close's
    own pipeline, late usage and credits of earlier periods included when it is the next
    period to close; None without a plan, or before the subscription started. `detail`:
    its calls by outcome type, feature, tier and model too (the live margins' rating)."""
    subscription = subscription_of(customer=customer)
    period = None if subscription is None else period_of(subscription=subscription, moment=moment)
    if subscription is None or period is None:
        return None
    start, end = period
    # Its invoice, if it is closed, and the one before (whose late usage it bills): one read.
    invoices = {
        invoice.period_start: invoice
        for invoice in Invoice.objects.standing()
        .filter(customer=customer)
        .filter(Q(period_start=start) | Q(period_end=start))
    }
    if start in invoices:
        return InvoicePreview(start, end, None, invoices[start])
    before = next((i for i in invoices.values() if i.period_end == start), None)
    previous = {customer.pk: before} if before is not None else {}
    [rated] = periods_rate(
        subscriptions=[subscription],
        start=start,
        end=end,
        snapshot=None,
        previous=previous,
        detail=detail,
    )
    return InvoicePreview(start, end, rated, None)


def periods_waiting_for_rates(*, as_of: datetime) -> dict[FxRateNeeded, list[str]]:
    """The FX rates that periods due by `as_of` and not invoiced yet need and nobody
    entered (their closes wait for them), with the customers waiting (external ids)."""
    by_period: dict[tuple[datetime, datetime], list[int]] = defaultdict(list)
    for due in periods_due(as_of=as_of):
        by_period[(due.start, due.end)].append(due.customer_id)
    waiting: dict[FxRateNeeded, list[str]] = defaultdict(list)
    for (start, end), customer_ids in sorted(by_period.items()):
        subscriptions = list(
            Subscription.objects.filter(customer_id__in=customer_ids).select_related("customer")
        )
        for period in periods_rate(
            subscriptions=subscriptions, start=start, end=end, snapshot=None
        ):
            for rate in period.missing_rates:
                waiting[rate].append(period.subscription.customer.external_id)
    return dict(waiting)
