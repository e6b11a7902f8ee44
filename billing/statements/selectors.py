"""An invoice's statement: the evidence behind each of its lines, for the customer who pays
it. Which outcomes it billed (each with its fee, and the allowance or tier it fell in),
which premium seats and on how many days, what came late from which period, what
credits paid; totals equal to the invoice. Never the inference cost of an outcome: that
is the operator's business.

The outcomes are the ones the invoice's close billed: succeeded in its period, as its
snapshot sees them (billing/invoicing/watermark.py), in the order rating counts them
(time of success, then id: the included ones are the first N). Each one's fee comes
from the invoice's own stored lines of its type, walked in that order: the included
line's outcomes carry nothing, each tier's line carries its count at its unit price, a
volume line all of them at its price, a package line its block price on the first
outcome of each block, a percentage line each outcome's fee (the rating's own SQL: its
value past the free value at the rate, plus the fixed fee, clamped), a graduated
percentage's tier lines each outcome's value at the rate of each tier it covers, and a
price by dimension each outcome at its value's price, on that price's line. A tier's flat
fee is a line of the type that no outcome carries. So the statement explains the lines as
they were billed, whatever the plan says today, and its fees sum to each line exactly
(before the line's one rounding; a graduated percentage's to its tier lines together, an
outcome that crosses a bound being listed on the line it starts in).

Large statements are read a page at a time (keyset: type, time of success, id), so that
a CSV of 100,000 outcomes streams without holding them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from api.errors import refusal
from billing.invoicing.models import CreditNote, Invoice, InvoiceLine, InvoiceStatus
from billing.invoicing.selectors.rating import (
    CONVERTED_VALUE_SQL,
    PERCENTAGE_FEE_SQL,
    VALUE_RATES_SQL,
    percentage_params,
)
from billing.invoicing.watermark import call_recorded, outcome_billable
from billing.money import to_minor_units
from billing.plans.models import LineKind, PriceModel, TierMode
from billing.plans.pricing import OutcomeTerms
from billing.plans.selectors import plan_terms
from common.replicas import reading
from outcomes.models import Dispute, Outcome

ZERO = Decimal(0)
# The lines that explain outcomes, by type.
_OUTCOME_LINES = (LineKind.INCLUDED, LineKind.OUTCOME)
# A type's lines: those, and the flat fees of the tiers its outcomes reached (billed once
# a tier, not by any outcome: shown as lines, not spread over the outcomes).
_TYPE_LINES = (*_OUTCOME_LINES, LineKind.TIER_FEE)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of one type's outcomes, in rating order, that one line billed."""

    count: int | None  # None: every outcome left (a package or percentage line)
    line: InvoiceLine
    allowance: str  # "included", "tier", "volume", "unit", "package", "percentage"
    fee: Decimal = ZERO  # per outcome (per block for a package)
    package_size: int | None = None
    # A graduated percentage: each tier line's stretch of the period's value, [from, to),
    # and its rate: an outcome pays the rate of each stretch its value covers.
    stretches: tuple[tuple[Decimal, Decimal, Decimal, InvoiceLine], ...] = ()
    # A price by dimension: the price and line of each value the prices name ("": any
    # other value, or none).
    by_value: dict[str, tuple[Decimal, InvoiceLine]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BilledOutcome:
    id: str
    type: str
    succeeded_at: datetime
    value: Decimal | None
    value_currency: str
    fee: Decimal  # invoice currency, exact: what this outcome adds to its line
    allowance: str
    line: int  # the position of the line it is billed on
    block: int | None = None  # a package's block, from 1
    fx_rate_missing: bool = False  # a value in a currency without a rate: billed nothing
    status_now: str = ""  # succeeded, or reversed since (credited on a later invoice)
    dispute: str = ""  # its latest dispute's status: open, accepted, rejected; "": none


@dataclass(slots=True)
class TypeSummary:
    type: str
    outcomes: int = 0  # billed on this invoice (included ones too)
    included: int = 0
    amount: int = 0  # minor units: its lines


@dataclass(frozen=True, slots=True)
class Seat:
    user: str
    active_days: int
    first_day: date
    last_day: date


@dataclass(slots=True)
class Statement:
    invoice: Invoice
    lines: list[InvoiceLine]
    types: list[TypeSummary]
    seats: list[Seat] = field(default_factory=list)
    # What was given back on the invoice since (with their lines).
    credit_notes: list[CreditNote] = field(default_factory=list)

    @property
    def lines_total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def credited(self) -> int:
        return sum(note.total for note in self.credit_notes)


def _segments(lines: list[InvoiceLine], terms: OutcomeTerms | None) -> list[Segment]:
    """How one type's stored lines split its outcomes, in rating order."""
    segments = []
    if terms is not None and terms.model == PriceModel.PERCENTAGE and terms.tiers:
        # A graduated percentage: its tier lines split the value, in order.
        stretches, reached = [], ZERO
        for line in lines:
            if line.kind == LineKind.INCLUDED:
                segments.append(Segment(int(line.quantity), line, "included"))
            else:
                stretches.append((reached, reached + line.quantity, line.unit_price, line))
                reached += line.quantity
        if stretches:
            segments.append(
                Segment(None, stretches[0][3], "percentage_tier", stretches=tuple(stretches))
            )
        return segments
    if terms is not None and terms.dimension:
        # A line per distinct price: each outcome pays its value's price, on its line.
        priced = [line for line in lines if line.kind != LineKind.INCLUDED]
        segments = [
            Segment(int(line.quantity), line, "included")
            for line in lines
            if line.kind == LineKind.INCLUDED
        ]
        assert terms.unit_price is not None, "a price by dimension has the price of any other"
        by_value = {
            value: (price, line)
            for value, price in (*terms.dimension_prices, ("", terms.unit_price))
            for line in priced
            if line.unit_price == price
        }
        if priced:
            segments.append(Segment(None, priced[0], "dimension", by_value=by_value))
        return segments
    for line in lines:
        if line.kind == LineKind.INCLUDED:
            segments.append(Segment(int(line.quantity), line, "included"))
        elif terms is not None and terms.model == PriceModel.PERCENTAGE:
            segments.append(Segment(None, line, "percentage"))
        elif terms is not None and terms.package_size and terms.tier_mode == TierMode.NONE:
            segments.append(
                Segment(None, line, "package", line.unit_price, package_size=terms.package_size)
            )
        else:
            kind = {"graduated": "tier", "volume": "volume"}.get(
                terms.tier_mode if terms is not None else "", "unit"
            )
            segments.append(Segment(int(line.quantity), line, kind, line.unit_price))
    return segments


def statement_of(invoice: Invoice) -> Statement:
    """The invoice's statement without its outcomes (read by statement_outcomes)."""
    # invoice_get has read them, with their source invoices: no second query.
    lines = sorted(invoice.lines.all(), key=lambda line: line.position)  # type: ignore[attr-defined]
    types: dict[str, TypeSummary] = {}
    for line in lines:
        if line.kind in _TYPE_LINES and line.source_invoice_id is None:
            summary = types.setdefault(line.outcome_type, TypeSummary(line.outcome_type))
            summary.amount += line.amount
            summary.included += int(line.quantity) if line.kind == LineKind.INCLUDED else 0
    counts = _counts(invoice, list(types))
    for name, summary in types.items():
        summary.outcomes = counts.get(name, 0)
    statement = Statement(invoice, lines, sorted(types.values(), key=lambda t: t.type))
    statement.credit_notes = list(invoice.credit_notes.all())  # type: ignore[attr-defined]
    if any(line.kind == LineKind.SEATS and line.source_invoice_id is None for line in lines):
        statement.seats = _active_seats(invoice)
    return statement


def _snapshot_params(invoice: Invoice) -> dict[str, object]:
    return {
        "customer": invoice.customer_id,
        "start": invoice.period_start,
        "end": invoice.period_end,
        "snapshot": invoice.snapshot or None,
    }


_SNAPSHOT = "%(snapshot)s::pg_snapshot"
_OUTCOMES_WHERE = f"""
FROM outcomes_outcome o
WHERE o.customer_id = %(customer)s AND o.succeeded_at >= %(start)s
  AND o.succeeded_at < %(end)s AND o.type = ANY(%(types)s)
  AND {outcome_billable(_SNAPSHOT)}
"""


def _counts(invoice: Invoice, types: list[str]) -> dict[str, int]:
    if not types:
        return {}
    with reading().cursor() as cursor:
        cursor.execute(
            f"SELECT o.type, count(*) {_OUTCOMES_WHERE} GROUP BY 1",
            _snapshot_params(invoice) | {"types": types},
        )
        return {name: count for name, count in cursor.fetchall()}


_SEATS_SQL = f"""
SELECT e.end_user, count(DISTINCT (e."timestamp" AT TIME ZONE 'UTC')::date),
       min((e."timestamp" AT TIME ZONE 'UTC')::date), max((e."timestamp" AT TIME ZONE 'UTC')::date)
FROM metering_usageevent e
WHERE e.customer_id = %(customer)s AND e."timestamp" >= %(start)s AND e."timestamp" < %(end)s
  AND e.tier = 'premium' AND e.end_user <> '' AND {call_recorded(_SNAPSHOT)}
GROUP BY 1 ORDER BY 1
"""  # noqa: S608 -- built from constants


def _active_seats(invoice: Invoice) -> list[Seat]:
    """The premium seats its period saw: the end users of premium-tier calls, with the
    days (UTC) they were active on."""
    with reading().cursor() as cursor:
        cursor.execute(_SEATS_SQL, _snapshot_params(invoice))
        return [Seat(user, days, first, last) for user, days, first, last in cursor.fetchall()]


_TYPE_WHERE = f"""
WHERE o.customer_id = %(customer)s AND o.succeeded_at >= %(start)s
  AND o.succeeded_at < %(end)s AND o.type = %(type)s AND {outcome_billable(_SNAPSHOT)}
"""


def _page_sql(*, percentage: bool, free_value: bool = False) -> str:
    """A page of one type's outcomes after a keyset position, in rating order; for a
    percentage price with each one's fee (rating's own PERCENTAGE_FEE_SQL), and whether
    its value waits for an FX rate (then it was billed nothing). With a free value, each
    fee depends on the value of the billable outcomes before it: summed over the whole
    type, then paged."""
    columns = (
        "o.id, o.external_id, o.type, o.succeeded_at, o.value, o.value_currency, o.status, "
        "o.properties"
    )
    fee = PERCENTAGE_FEE_SQL if percentage else "NULL::numeric"
    if not percentage:
        units = f"""SELECT {columns}, NULL::numeric AS converted, false AS missing,
           0 AS before
    FROM outcomes_outcome o
    {_TYPE_WHERE}
      AND (o.succeeded_at, o.id) > (%(after_at)s, %(after_id)s)"""  # noqa: S608 -- constants
    elif not free_value:
        units = f"""SELECT {columns}, {CONVERTED_VALUE_SQL} AS converted,
           o.value IS NOT NULL AND {CONVERTED_VALUE_SQL} IS NULL AS missing, 0 AS before
    FROM outcomes_outcome o
    {VALUE_RATES_SQL}
    {_TYPE_WHERE}
      AND (o.succeeded_at, o.id) > (%(after_at)s, %(after_id)s)"""  # noqa: S608 -- constants
    else:
        units = f"""SELECT * FROM (
        SELECT *, coalesce(sum(CASE WHEN position > %(included)s THEN coalesce(converted, 0)
                                    ELSE 0 END)
                      OVER (ORDER BY succeeded_at, id
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
        FROM (
            SELECT {columns}, {CONVERTED_VALUE_SQL} AS converted,
                   o.value IS NOT NULL AND {CONVERTED_VALUE_SQL} IS NULL AS missing,
                   row_number() OVER (ORDER BY o.succeeded_at, o.id) AS position
            FROM outcomes_outcome o
            {VALUE_RATES_SQL}
            {_TYPE_WHERE}
        ) AS every_unit
    ) AS o
    WHERE (o.succeeded_at, o.id) > (%(after_at)s, %(after_id)s)"""  # noqa: S608 -- constants
    return f"""
SELECT external_id, type, succeeded_at, value, value_currency, status, {fee}, missing,
       converted, before, properties ->> %(dimension)s,
       coalesce((SELECT d.status FROM outcomes_dispute d WHERE d.outcome_id = o.id
                 ORDER BY d.created_at DESC, d.id DESC LIMIT 1), ''),
       id
FROM (
    {units}
    ORDER BY succeeded_at, id
    LIMIT %(limit)s
) AS o
ORDER BY succeeded_at, id
"""  # noqa: S608 -- built from constants


_PAGE_SQLS = {
    (percentage, free_value): _page_sql(percentage=percentage, free_value=free_value)
    for percentage, free_value in ((False, False), (True, False), (True, True))
}
# Where the page after the first `skip` outcomes starts.
_NTH_SQL = f"""SELECT o.succeeded_at, o.id FROM outcomes_outcome o {_TYPE_WHERE}
ORDER BY o.succeeded_at, o.id OFFSET %(skip)s - 1 LIMIT 1"""  # noqa: S608 -- constants


def statement_outcomes(
    statement: Statement, *, offset: int = 0, limit: int | None = None, chunk: int = 5000
) -> Iterator[BilledOutcome]:
    """The billed outcomes, by type, then in rating order, from `offset` (the index in
    that order); `limit` of them, or all. Read `chunk` at a time."""
    invoice = statement.invoice
    terms = {t.outcome_type: t for t in plan_terms(version=invoice.plan_version).outcomes}
    left = limit
    for summary in statement.types:
        if offset >= summary.outcomes:
            offset -= summary.outcomes
            continue
        lines = [
            line
            for line in statement.lines
            if line.outcome_type == summary.type
            and line.kind in _OUTCOME_LINES
            and line.source_invoice_id is None
        ]
        outcome_terms = terms.get(summary.type)
        segments = _segments(lines, outcome_terms)
        for outcome in _type_outcomes(invoice, summary.type, outcome_terms, offset, chunk):
            if left is not None and left <= 0:
                return
            yield _billed(outcome, segments)
            if left is not None:
                left -= 1
        offset = 0


@dataclass(frozen=True, slots=True)
class _Row:
    rank: int  # from 1, in rating order within the type
    id: str
    type: str
    succeeded_at: datetime
    value: Decimal | None
    value_currency: str
    status: str
    value_fee: Decimal | None
    missing: bool
    converted: Decimal | None  # its value in the invoice's currency (a percentage's)
    before: Decimal  # the value of the billable outcomes before it (free value, tiers)
    dimension_value: str | None  # its property a price by dimension is by
    dispute: str


def _type_outcomes(
    invoice: Invoice, outcome_type: str, terms: OutcomeTerms | None, skip: int, chunk: int
) -> Iterator[_Row]:
    """A type's billed outcomes in rating order, after the first `skip`: keyset pages."""
    percentage = terms is not None and terms.model == PriceModel.PERCENTAGE
    # (A graduated percentage needs each outcome's value before it, as a free value does.)
    free_value = percentage and terms is not None and bool(terms.free_value or terms.tiers)
    params = _snapshot_params(invoice) | {
        "type": outcome_type,
        "currency": invoice.currency,
        "dimension": terms.dimension if terms is not None else "",
        **(percentage_params(terms, invoice.currency) if percentage and terms else {}),
        "after_at": invoice.period_start - timedelta(seconds=1),
        "after_id": 0,
        "limit": chunk,
    }
    rank = 0
    with reading().cursor() as cursor:
        if skip:  # one index scan to where the page starts, not `skip` rows sent here
            cursor.execute(_NTH_SQL, params | {"skip": skip})
            found = cursor.fetchone()
            if found is None:
                return
            params["after_at"], params["after_id"] = found
            rank = skip
        while True:
            cursor.execute(_PAGE_SQLS[(percentage, free_value)], params)
            rows = cursor.fetchall()
            for *row, _ in rows:
                rank += 1
                yield _Row(rank, *row)
            if len(rows) < chunk:
                return
            params["after_at"], params["after_id"] = rows[-1][2], rows[-1][-1]


def _billed(row: _Row, segments: list[Segment]) -> BilledOutcome:
    """The fee of the outcome of rank `row.rank` in its type, from the lines' segments."""
    start = 0
    for segment in segments:
        if segment.count is not None and row.rank > start + segment.count:
            start += segment.count
            continue
        index = row.rank - start - 1  # from 0 within the segment
        block = None
        line = segment.line
        if segment.allowance == "percentage":
            fee = ZERO if row.missing or row.value_fee is None else row.value_fee
        elif segment.allowance == "percentage_tier":
            fee, line = _tiered_fee(row, segment)
        elif segment.allowance == "dimension":
            value = row.dimension_value if row.dimension_value in segment.by_value else ""
            fee, line = segment.by_value[value or ""]
        elif segment.allowance == "package":
            assert segment.package_size is not None
            block = index // segment.package_size + 1
            fee = segment.fee if index % segment.package_size == 0 else ZERO
        else:
            fee = segment.fee
        return BilledOutcome(
            id=row.id,
            type=row.type,
            succeeded_at=row.succeeded_at,
            value=row.value,
            value_currency=row.value_currency,
            fee=fee,
            allowance=segment.allowance,
            line=line.position,
            block=block,
            fx_rate_missing=row.missing,
            status_now=row.status,
            dispute=row.dispute,
        )
    raise AssertionError(f"outcome {row.id} of rank {row.rank} is past its type's lines")


def _tiered_fee(row: _Row, segment: Segment) -> tuple[Decimal, InvoiceLine]:
    """A graduated percentage: what the outcome's value, [before, before + value), pays in
    each tier's stretch of it, and the line of the stretch it starts in (one that spans
    two tiers pays each its part: its fee sums over lines, the type's fees to its lines)."""
    value = ZERO if row.missing or row.converted is None else row.converted
    start, end = row.before, row.before + value
    fee, line = ZERO, None
    for low, high, rate, stretch_line in segment.stretches:
        overlap = min(end, high) - max(start, low)
        if overlap > 0:
            fee += overlap * rate
            line = line or stretch_line
        elif line is None and low <= start < high:
            line = stretch_line  # (worth 0: the stretch it stands in)
    return fee, line or segment.stretches[-1][3]


_RANK_SQL = f"""SELECT count(*) FROM outcomes_outcome o {_TYPE_WHERE}
  AND (o.succeeded_at, o.id) <= (%(at)s, %(id)s)
  AND EXISTS (SELECT 1 FROM outcomes_outcome o WHERE o.id = %(id)s
              AND {outcome_billable(_SNAPSHOT)})"""  # noqa: S608 -- built from constants


def outcome_billed(*, invoice: Invoice, outcome: Outcome) -> BilledOutcome | None:
    """How the invoice billed this outcome (its fee, its line), or None when its close did
    not bill it (not of its period, or late: billed on a later invoice as late usage)."""
    if outcome.succeeded_at is None or not (
        invoice.period_start <= outcome.succeeded_at < invoice.period_end
    ):
        return None
    with reading().cursor() as cursor:
        cursor.execute(
            _RANK_SQL,
            _snapshot_params(invoice)
            | {"type": outcome.type, "at": outcome.succeeded_at, "id": outcome.pk},
        )
        (rank,) = cursor.fetchone()
    if not rank:
        return None
    statement = statement_of(invoice)
    before = 0
    for summary in statement.types:
        if summary.type == outcome.type:
            return next(statement_outcomes(statement, offset=before + rank - 1, limit=1), None)
        before += summary.outcomes
    return None


def dispute_credit_terms(*, dispute: Dispute) -> tuple[Invoice, BilledOutcome]:
    """The invoice that billed the disputed outcome and how (its fee, its line), or a
    refusal (409) saying why a credit note cannot be its remedy: no invoice billed it in
    its own period yet, or it added nothing to it."""
    outcome = dispute.outcome
    invoice = (
        Invoice.objects.standing()
        .exclude(status=InvoiceStatus.VOID)
        .filter(
            customer_id=outcome.customer_id,
            period_start__lte=outcome.succeeded_at,
            period_end__gt=outcome.succeeded_at,
        )
        .select_related("plan_version")
        .first()
    )
    billed = None if invoice is None else outcome_billed(invoice=invoice, outcome=outcome)
    if invoice is None or billed is None:
        raise refusal(
            None,
            "not_invoiced",
            f"No invoice billed outcome `{outcome.external_id}` in its own period yet: "
            "accept the dispute with the next invoice's credit.",
            409,
        )
    if to_minor_units(billed.fee, invoice.currency) <= 0:
        raise refusal(
            None,
            "nothing_billed",
            f"Outcome `{outcome.external_id}` added nothing to invoice {invoice.pk} "
            f"({billed.allowance}): there is nothing to credit.",
            409,
        )
    return invoice, billed
