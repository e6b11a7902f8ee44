"""Correcting an invoice after its close: a credit note (money given back on a finalized or
paid invoice, line by line), or a void and a reissue of its period from the same
snapshot with corrected inputs (the plan version it should have been rated on).

Both keep what the customer was told consistent: credit notes never give back more than
an invoice or a line billed, and a reissue leaves exactly one live invoice for the
period, billing the facts the first one billed (the same snapshot), no more and no less.
The Stripe side (the credit note made there, the void made there first) is in
billing/stripe_sync/services/; this module is what payback stores.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum

from api.errors import refusal
from billing.credits.models import CreditEntry
from billing.credits.services import grants_lock, money_checked
from billing.invoicing.fx import MissingFxRate
from billing.invoicing.models import (
    CreditMethod,
    CreditNote,
    CreditNoteLine,
    CreditReason,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PushState,
)
from billing.invoicing.selectors.rating import periods_rate, previous_invoices
from billing.invoicing.services.closing import ClosedPeriods, close_rated
from billing.money import to_minor_units
from billing.plans.models import PlanVersion, Subscription
from billing.plans.pricing import RatedLine
from common.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

PUSH_CREDIT_NOTE = "stripe_sync.tasks.push_credit_note"  # billing/stripe_sync/tasks.py
RECONCILE_INVOICES = "billing.tasks.reconcile_invoices"  # billing/analytics/tasks.py

# The invoices a credit note may credit, and the methods that fit each: an unpaid invoice's
# credit lowers what is due; a paid one's goes back as a refund, to the customer's Stripe
# balance, or outside Stripe (Stripe's own rule: the three must add up to the note).
_METHODS = {
    InvoiceStatus.FINALIZED: (CreditMethod.AMOUNT_DUE,),
    InvoiceStatus.PAID: (
        CreditMethod.REFUND,
        CreditMethod.CUSTOMER_BALANCE,
        CreditMethod.OUTSIDE_STRIPE,
    ),
}


@dataclass(frozen=True, slots=True)
class CreditLineRequest:
    """Part or all of an invoice line (its `position`), or an amount of its own (position
    None, with a description). `amount` in major units of the invoice's currency."""

    amount: Decimal
    invoice_line: int | None = None
    description: str = ""
    outcome_id: int | None = None  # the outcome it credits (a dispute's)


@dataclass(frozen=True, slots=True)
class CreditNoteRequest:
    external_id: str
    lines: tuple[CreditLineRequest, ...]
    method: str = ""  # "": amount_due for an unpaid invoice; required for a paid one
    reason: str = ""
    memo: str = ""


def credit_note_issue(
    *, invoice_id: int, request: CreditNoteRequest, by: str = "", dispute_id: int | None = None
) -> tuple[CreditNote, bool]:
    """Issue a credit note on an invoice (and queue its push to Stripe). The same
    `external_id` again is the same note (False) when it says the same, and refused (409)
    when it says otherwise; anything the note cannot say is refused by field (400), and
    an invoice that cannot be credited as asked by 409. The invoice row is locked: two
    notes at once are checked one after the other against what is left to credit."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        found = CreditNote.objects.filter(invoice=invoice, external_id=request.external_id).first()
        if found is not None:
            if not _same(found, request):
                raise refusal(
                    "id",
                    "conflict",
                    f"Credit note `{request.external_id}` exists with other terms.",
                    409,
                )
            return found, False
        method = _method_checked(invoice, request)
        lines = _lines_checked(invoice, request)
        total = sum(line.amount for line in lines)
        credited = _credited(invoice)
        if total > invoice.total - credited:
            raise refusal(
                "lines",
                "exceeds_invoice",
                f"Invoice {invoice.pk} billed {invoice.total} minor units and "
                f"{credited} are credited already: {total} more is too much.",
                409,
            )
        in_stripe = bool(invoice.stripe_invoice_id) and invoice.push_state == PushState.PUSHED
        note = CreditNote.objects.create(
            invoice=invoice,
            external_id=request.external_id,
            number=CreditNote.objects.filter(invoice=invoice).count() + 1,
            method=method,
            reason=request.reason,
            memo=request.memo,
            currency=invoice.currency,
            total=total,
            dispute_id=dispute_id,
            created_by=by,
            push_state=PushState.PENDING if in_stripe else PushState.NOT_SENT,
        )
        for position, line in enumerate(lines, start=1):
            line.credit_note, line.position = note, position
        CreditNoteLine.objects.bulk_create(lines)
        if in_stripe:
            enqueue_on_commit(PUSH_CREDIT_NOTE, note.pk)
        # The margin breakdown takes the credit off the revenue of the calls it billed.
        enqueue_on_commit(RECONCILE_INVOICES, [invoice.pk])
    return note, True


def _methods(invoice: Invoice) -> tuple[str, ...] | None:
    """The methods that fit the invoice, None when it cannot be credited. Without Stripe a
    draft is as final as an invoice gets (nothing finalizes it): it is credited as an
    unpaid one, or outside Stripe."""
    if invoice.status == InvoiceStatus.DRAFT and not settings.STRIPE_API_KEY:
        return (CreditMethod.AMOUNT_DUE, CreditMethod.OUTSIDE_STRIPE)
    return _METHODS.get(invoice.status)


def _method_checked(invoice: Invoice, request: CreditNoteRequest) -> str:
    fitting = _methods(invoice)
    if fitting is None:
        raise refusal(
            None,
            "invalid_status",
            f"Invoice {invoice.pk} is {invoice.status}: only a finalized or paid invoice "
            "can be credited (a draft too, where payback has no Stripe key).",
            409,
        )
    if (
        invoice.push_state in (PushState.PENDING, PushState.PUSHING, PushState.FAILED)
        and settings.STRIPE_API_KEY
    ):
        raise refusal(
            None,
            "not_in_stripe",
            f"Invoice {invoice.pk} is not in Stripe yet ({invoice.push_state}): credit it "
            "once its push is done.",
            409,
        )
    method = _default_method(request, fitting)
    if not method:
        choices = ", ".join(fitting)
        raise refusal("method", "required", f"Invoice {invoice.pk} is paid: say {choices}.")
    if method not in fitting:
        raise refusal(
            "method",
            "invalid",
            f"Invoice {invoice.pk} is {invoice.status}: its credit can be "
            f"{', '.join(fitting)}, not {method}.",
        )
    if request.reason and request.reason not in CreditReason.values:
        raise refusal("reason", "invalid", f"One of {', '.join(CreditReason.values)}.")
    return method


def _default_method(request: CreditNoteRequest, fitting: tuple[str, ...]) -> str:
    """The method asked for; left out, amount_due where it fits (an unpaid invoice)."""
    if request.method:
        return request.method
    return CreditMethod.AMOUNT_DUE if CreditMethod.AMOUNT_DUE in fitting else ""


def _lines_checked(invoice: Invoice, request: CreditNoteRequest) -> list[CreditNoteLine]:
    if not request.lines:
        raise refusal("lines", "required", "A credit note needs at least one line.")
    by_position = {line.position: line for line in invoice.lines.all()}
    left = {line.pk: line.amount - credited for line, credited in _credited_lines(invoice).items()}
    made = []
    for index, asked in enumerate(request.lines):
        field = f"lines.{index}"
        money_checked(asked.amount, invoice.currency, field=f"{field}.amount")
        amount = to_minor_units(asked.amount, invoice.currency)  # whole already: checked
        line = None
        if asked.invoice_line is not None:
            line = by_position.get(asked.invoice_line)
            if line is None:
                raise refusal(
                    f"{field}.invoice_line",
                    "not_found",
                    f"Invoice {invoice.pk} has no line {asked.invoice_line}.",
                )
            if line.amount <= 0:
                raise refusal(
                    f"{field}.invoice_line",
                    "invalid",
                    f"Line {line.position} is a credit itself: there is nothing to give back.",
                )
            remaining = left.get(line.pk, line.amount)
            if amount > remaining:
                raise refusal(
                    f"{field}.amount",
                    "exceeds_line",
                    f"Line {line.position} billed {line.amount} minor units and has "
                    f"{remaining} left to credit.",
                    409,
                )
            left[line.pk] = remaining - amount
        elif not asked.description.strip():
            raise refusal(
                f"{field}.description",
                "required",
                "A line that credits no invoice line says what it is for.",
            )
        made.append(
            CreditNoteLine(
                invoice_line=line,
                description=(asked.description.strip() or f"Credit: {line.description}")[:300]
                if line is not None
                else asked.description.strip()[:300],
                amount=amount,
                outcome_id=asked.outcome_id,
            )
        )
    return made


def _credited(invoice: Invoice) -> int:
    return CreditNote.objects.filter(invoice=invoice).aggregate(total=Sum("total"))["total"] or 0


def _credited_lines(invoice: Invoice) -> dict[InvoiceLine, int]:
    sums = (
        CreditNoteLine.objects.filter(credit_note__invoice=invoice, invoice_line__isnull=False)
        .values("invoice_line")
        .annotate(total=Sum("amount"))
    )
    lines = {line.pk: line for line in invoice.lines.all()}
    return {lines[row["invoice_line"]]: row["total"] for row in sums}


def _same(note: CreditNote, request: CreditNoteRequest) -> bool:
    """Whether a request says what the note says (a method left out says nothing: the
    invoice may have been paid since the note was issued, and a retry is still the same)."""
    lines = [
        (line.amount, line.invoice_line.position if line.invoice_line else None, line.outcome_id)
        for line in note.lines.select_related("invoice_line")
    ]
    asked = [
        (to_minor_units(line.amount, note.currency), line.invoice_line, line.outcome_id)
        for line in request.lines
    ]
    return (
        request.method in ("", note.method)
        and (request.reason, request.memo) == (note.reason, note.memo)
        and asked == lines
    )


# --- void and reissue --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineChange:
    """One line of the difference a reissue makes: a line before (stored), after (rated),
    or both (the same line: its kind, outcome type, feature, source period and place)."""

    kind: str
    before_description: str
    before_amount: int | None
    after_description: str
    after_amount: int | None

    @property
    def difference(self) -> int:
        return (self.after_amount or 0) - (self.before_amount or 0)


@dataclass(frozen=True, slots=True)
class Reissue:
    """What reissuing an invoice's period on `version` would bill, against what it billed."""

    invoice: Invoice
    version: PlanVersion
    lines: tuple[RatedLine, ...]
    changes: tuple[LineChange, ...]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def unchanged(self) -> bool:
        return all(change.difference == 0 for change in self.changes) and len(self.lines) == len(
            self.changes
        )


def _line_key(kind: str, outcome_type: str, feature: str | None, source: int | None) -> tuple:
    return (kind, outcome_type, feature, source)


def lines_compared(before: list[InvoiceLine], after: tuple[RatedLine, ...]) -> list[LineChange]:
    """The stored lines against the rated ones, paired by what they bill (kind, outcome
    type, feature, source period) and their order among those: line by line."""
    after_by_key: dict[tuple, list[RatedLine]] = defaultdict(list)
    for line in after:
        after_by_key[
            _line_key(line.kind, line.outcome_type, line.feature, line.source_invoice_id)
        ].append(line)
    changes = []
    for line in sorted(before, key=lambda line: line.position):
        key = _line_key(line.kind, line.outcome_type, line.feature, line.source_invoice_id)
        pair = after_by_key[key].pop(0) if after_by_key[key] else None
        changes.append(
            LineChange(
                line.kind,
                line.description,
                line.amount,
                pair.description if pair else "",
                pair.amount if pair else None,
            )
        )
    for rest in after_by_key.values():
        changes += [LineChange(line.kind, "", None, line.description, line.amount) for line in rest]
    return changes


def _reissue_refusal(invoice: Invoice, version: PlanVersion) -> None:
    """Refuse (409, or 400 for the version) a reissue that could not bill the period
    exactly once and consistently."""
    if invoice.replaced_by_id is not None:
        raise refusal(
            None,
            "reissued",
            f"Invoice {invoice.pk} is reissued already, as invoice {invoice.replaced_by_id}.",
            409,
        )
    if invoice.status == InvoiceStatus.PAID:
        raise refusal(
            None,
            "invalid_status",
            f"Invoice {invoice.pk} is paid: Stripe cannot void it. Credit it instead.",
            409,
        )
    if invoice.push_state == PushState.PUSHING and settings.STRIPE_API_KEY:
        raise refusal(
            None,
            "pushing",
            f"Invoice {invoice.pk} is being pushed to Stripe: reissue it once that is done.",
            409,
        )
    if not invoice.snapshot:
        raise refusal(
            None,
            "no_snapshot",
            f"Invoice {invoice.pk} was closed without its snapshot: what it billed cannot "
            "be billed again exactly.",
            409,
        )
    if CreditNote.objects.filter(invoice=invoice).exists():
        raise refusal(
            None,
            "credited",
            f"Invoice {invoice.pk} has credit notes: correct it with another credit note.",
            409,
        )
    if CreditEntry.objects.filter(Q(invoice=invoice) | Q(source_invoice=invoice)).exists():
        raise refusal(
            None,
            "credits_used",
            f"Credits paid part of invoice {invoice.pk} (or came back to it): correct it "
            "with a credit note.",
            409,
        )
    if InvoiceLine.objects.filter(source_invoice=invoice).exists():
        raise refusal(
            None,
            "billed_later",
            f"A later invoice bills late usage or credits of invoice {invoice.pk}'s "
            "period: correct it with a credit note.",
            409,
        )
    if version.currency != invoice.currency:
        raise refusal(
            "plan_version",
            "invalid",
            f"Invoice {invoice.pk} is in {invoice.currency}; version {version.pk} prices in "
            f"{version.currency}.",
        )
    if version.recurring_credits != invoice.plan_version.recurring_credits:
        raise refusal(
            "plan_version",
            "invalid",
            f"Version {version.pk} grants other credits each period than the one invoice "
            f"{invoice.pk} was rated on: the period's grants would not be what it drew on.",
        )


def _rate(invoice: Invoice, version: PlanVersion, subscription: Subscription) -> Reissue:
    previous = previous_invoices(customer_ids=[invoice.customer_id], before=invoice.period_start)
    [period] = periods_rate(
        subscriptions=[subscription],
        start=invoice.period_start,
        end=invoice.period_end,
        snapshot=invoice.snapshot,
        previous=previous,
        rated_on={invoice.customer_id: version},
    )
    if period.missing_rates:
        raise MissingFxRate(period.missing_rates)
    lines = period.invoice.lines
    return Reissue(invoice, version, lines, tuple(lines_compared(list(invoice.lines.all()), lines)))


def reissue_change_required(reissue: Reissue) -> None:
    """Refuse (409) a reissue that would bill the period exactly as it was billed."""
    if reissue.unchanged:
        raise refusal(
            "plan_version",
            "unchanged",
            f"Version {reissue.version.pk} bills invoice {reissue.invoice.pk}'s period "
            "exactly as it was billed: there is nothing to reissue.",
            409,
        )


def invoice_reissue_preview(*, invoice_id: int, plan_version_id: int) -> Reissue:
    """What a reissue of the invoice's period on this plan version would bill, line by line
    against what it billed (what the admin shows before the operator confirms)."""
    invoice = Invoice.objects.select_related("plan_version").get(pk=invoice_id)
    version = PlanVersion.objects.get(pk=plan_version_id)
    _reissue_refusal(invoice, version)
    subscription = Subscription.objects.select_related("customer").get(
        customer_id=invoice.customer_id
    )
    return _rate(invoice, version, subscription)


def invoice_reissue(*, invoice_id: int, plan_version_id: int, by: str = "") -> Invoice:
    """Void the invoice (here: in Stripe it is voided first, by the caller) and bill its
    period again from the same snapshot on `plan_version_id`: the same facts, the corrected
    price. In one transaction with the customer's subscription and grants locked, as a
    close: exactly one live invoice for the period, whatever runs at once. Returns the new
    invoice (pushed to Stripe like any other); the old one names it (`replaced_by`)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_related("plan_version").get(pk=invoice_id)
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("customer")
            .get(customer_id=invoice.customer_id)
        )
        grants_lock(customer_ids=[invoice.customer_id])
        invoice = (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("plan_version")
            .get(pk=invoice_id)
        )
        version = PlanVersion.objects.get(pk=plan_version_id)
        _reissue_refusal(invoice, version)
        reissue_change_required(_rate(invoice, version, subscription))
        if invoice.status != InvoiceStatus.VOID:
            invoice.status = InvoiceStatus.VOID
            # save(), not update(): the void is in the audit log.
            invoice.save(update_fields=["status", "updated_at"])
        result = ClosedPeriods()
        [new] = close_rated(
            [subscription],
            invoice.period_start,
            invoice.period_end,
            invoice.snapshot,
            previous_invoices(customer_ids=[invoice.customer_id], before=invoice.period_start),
            result,
            rated_on={invoice.customer_id: version},
        )
        invoice.replaced_by = new
        invoice.save(update_fields=["replaced_by", "updated_at"])
    logger.info(
        "invoice %s voided and reissued as %s on plan version %s by %s",
        invoice.pk,
        new.pk,
        version.pk,
        by or "-",
    )
    return new
