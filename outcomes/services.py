"""Writes of the outcomes app: recording outcomes and moving their status."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.module_loading import import_string

from api.batch import BatchResult, raise_if_errors
from api.errors import ApiError, ErrorDetail
from common import metrics
from common.metrics import batch_observed
from metering.models import Customer
from outcomes.locks import customers_lock, outcomes_lock
from outcomes.models import Dispute, DisputeRemedy, DisputeStatus, Outcome, OutcomeStatus
from outcomes.schemas import ValidOutcome

# The only moves POST /v1/outcomes makes; succeeded -> reversed is outcome_reverse's.
ALLOWED_MOVES: dict[str, frozenset[str]] = {
    OutcomeStatus.PENDING: frozenset({OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED}),
}
_STATUS_TIME_FIELD = {
    OutcomeStatus.SUCCEEDED: "succeeded_at",
    OutcomeStatus.FAILED: "failed_at",
    OutcomeStatus.REVERSED: "reversed_at",
}
_BILLABLE = frozenset({OutcomeStatus.SUCCEEDED, OutcomeStatus.REVERSED})
_UPDATED_FIELDS = [
    "status",
    "succeeded_at",
    "succeeded_recorded_at",
    "failed_at",
    "value",
    "value_currency",
    "updated_at",
]


def _conflicts_with(current: Outcome, sent: ValidOutcome) -> bool:
    """Does the item say something else than what is stored (status aside)?"""
    item = sent.item
    return (
        (item.customer is not None and item.customer != current.customer.external_id)
        or (item.type is not None and item.type != current.type)
        or (
            sent.value is not None
            and current.value is not None
            and (sent.value != current.value or sent.currency != current.value_currency)
        )
        or (sent.properties is not None and sent.properties != current.properties)
    )


def _set_status(outcome: Outcome, status: str, at: datetime) -> None:
    outcome.status = status
    if status in _STATUS_TIME_FIELD:
        setattr(outcome, _STATUS_TIME_FIELD[status], at)
    if status == OutcomeStatus.SUCCEEDED:
        outcome.succeeded_recorded_at = timezone.now()


def _new_outcome(sent: ValidOutcome, customer: Customer) -> Outcome:
    outcome = Outcome(
        external_id=sent.item.id,
        customer=customer,
        type=sent.item.type,
        occurred_at=sent.timestamp,
        value=sent.value,
        value_currency=sent.currency,
        properties=sent.properties or {},
    )
    _set_status(outcome, sent.item.status or OutcomeStatus.PENDING, sent.timestamp)
    return outcome


def outcomes_record(*, outcomes: list[ValidOutcome]) -> BatchResult:
    """Create outcomes and move their status, all or nothing.

    A known id with the same status is a duplicate (a value sent for the first time is
    kept); with other customer, type, value or properties, a conflict (reported, nothing
    changed); with an allowed move, the move. A refused move refuses the whole request
    with 409, naming the outcome's current status.
    """
    result = BatchResult()
    with transaction.atomic():
        state = outcomes_lock(external_ids=[o.item.id for o in outcomes])
        customer_ids = {o.item.customer for o in outcomes if o.item.customer is not None}
        customers = {
            c.external_id: c for c in Customer.objects.filter(external_id__in=customer_ids)
        }
        customers_lock(
            customer_ids={c.pk for c in customers.values()}
            | {o.customer_id for o in state.values()}
        )
        created: dict[str, Outcome] = {}
        changed: set[str] = set()
        bad_input: list[ErrorDetail] = []
        refused: list[ErrorDetail] = []
        for index, sent in enumerate(outcomes):
            item = sent.item
            current = state.get(item.id)
            if current is None:
                missing = [name for name in ("customer", "type") if getattr(item, name) is None]
                bad_input.extend(
                    ErrorDetail(index=index, field=name, code="required",
                                message=f"A new outcome needs `{name}`.")
                    for name in missing
                )  # fmt: skip
                if item.customer is not None and item.customer not in customers:
                    bad_input.append(
                        ErrorDetail(index=index, field="customer", code="unknown_customer",
                                    message=f"No customer `{item.customer}`.")
                    )  # fmt: skip
                if missing or item.customer not in customers:
                    continue
                state[item.id] = created[item.id] = _new_outcome(sent, customers[item.customer])
                result.accepted += 1
                continue
            if _conflicts_with(current, sent):
                result.conflicts.append(item.id)
                continue
            first_value = sent.value is not None and current.value is None
            if first_value and current.status in _BILLABLE:
                # A success's fee is fixed when it succeeds (and may be invoiced since):
                # its value comes before or with the success, never after.
                result.conflicts.append(item.id)
                continue
            if first_value:
                current.value, current.value_currency = sent.value, sent.currency
            target = item.status or current.status
            if target == current.status:
                if first_value:
                    changed.add(item.id)
                    result.accepted += 1
                else:
                    result.duplicates += 1
                continue
            if target not in ALLOWED_MOVES.get(current.status, frozenset()):
                refused.append(
                    ErrorDetail(
                        index=index,
                        field="status",
                        code="invalid_transition",
                        message=f"Outcome `{item.id}` is {current.status}; "
                        f"it cannot move to {target}.",
                    )
                )
                continue
            _set_status(current, target, sent.timestamp)
            changed.add(item.id)
            result.accepted += 1
        raise_if_errors(bad_input)
        raise_if_errors(refused, status_code=409)
        Outcome.objects.bulk_create(created.values())
        Outcome.objects.bulk_update(
            [state[key] for key in changed if key not in created], _UPDATED_FIELDS
        )
        reserved = {
            (state[sent.item.id].customer_id, sent.item.reservation)
            for sent in outcomes
            if sent.item.reservation and sent.item.id in state
            and sent.item.id not in result.conflicts
        }  # fmt: skip
        if reserved:  # recorded with the outcomes, in their transaction
            import_string(settings.USAGE_SETTLES_RESERVATIONS)(
                reserved=reserved, now=timezone.now()
            )
    batch_observed(
        metrics.OUTCOMES,
        accepted=result.accepted,
        duplicates=result.duplicates,
        conflicts=len(result.conflicts),
    )
    return result


def _credited_by_note(outcome: Outcome) -> bool:
    return Dispute.objects.filter(
        outcome=outcome, status=DisputeStatus.ACCEPTED, remedy=DisputeRemedy.CREDIT_NOTE
    ).exists()


def outcome_reverse(*, external_id: str, window: timedelta | None, now: datetime) -> Outcome:
    """succeeded -> reversed, within `window` of the success (the plan's reversal window;
    None: whenever, as for an accepted dispute). Reversing a reversed outcome again
    changes nothing (a retry is safe)."""
    with transaction.atomic():
        outcome = outcomes_lock(external_ids=[external_id]).get(external_id)
        if outcome is None:
            raise Http404(f"No outcome `{external_id}`.")
        if outcome.status == OutcomeStatus.REVERSED:
            return outcome
        if outcome.status != OutcomeStatus.SUCCEEDED:
            raise ApiError(
                [ErrorDetail(field="status", code="invalid_transition",
                             message=f"Outcome `{external_id}` is {outcome.status}; only a "
                                     "succeeded outcome can be reversed.")],
                status_code=409,
            )  # fmt: skip
        if _credited_by_note(outcome):
            raise ApiError(
                [ErrorDetail(field="status", code="credited",
                             message=f"Outcome `{external_id}` was disputed and credited by a "
                                     "credit note: reversing it would credit it twice.")],
                status_code=409,
            )  # fmt: skip
        if (
            window is not None
            and outcome.succeeded_at is not None
            and now - outcome.succeeded_at > window
        ):
            raise ApiError(
                [ErrorDetail(field="status", code="reversal_window_passed",
                             message=f"Outcome `{external_id}` succeeded at "
                                     f"{outcome.succeeded_at.isoformat()}; the reversal window "
                                     f"of {window.days} days has passed.")],
                status_code=409,
            )  # fmt: skip
        _set_status(outcome, OutcomeStatus.REVERSED, now)
        outcome.save(update_fields=["status", "reversed_at", "updated_at"])
    return outcome


def dispute_open(*, external_id: str, reason: str) -> tuple[Dispute, bool]:
    """The customer contests a billed (or to be billed) outcome: an open dispute, and
    whether it is new. While one is open, sending it again answers with it. 404 for no
    such outcome, 409 for one that is not a success (nothing is billed for it)."""
    with transaction.atomic():
        outcome = outcomes_lock(external_ids=[external_id]).get(external_id)
        if outcome is None:
            raise Http404(f"No outcome `{external_id}`.")
        found = Dispute.objects.filter(outcome=outcome, status=DisputeStatus.OPEN).first()
        if found is not None:
            return found, False
        if _credited_by_note(outcome):
            raise ApiError(
                [ErrorDetail(field=None, code="credited",
                             message=f"Outcome `{external_id}` was disputed and credited by a "
                                     "credit note already.")],
                status_code=409,
            )  # fmt: skip
        if outcome.status != OutcomeStatus.SUCCEEDED:
            raise ApiError(
                [ErrorDetail(field=None, code="not_billed",
                             message=f"Outcome `{external_id}` is {outcome.status}: nothing "
                                     "is billed for it to dispute.")],
                status_code=409,
            )  # fmt: skip
        return Dispute.objects.create(outcome=outcome, reason=reason), True


class DisputeDecided(Exception):
    """A dispute that is no longer open cannot be decided again."""


def dispute_decide(
    *,
    dispute_id: int,
    accept: bool,
    note: str,
    by: str,
    now: datetime,
    remedy: str = DisputeRemedy.NEXT_INVOICE,
) -> Dispute:
    """An operator's decision on an open dispute, with a note. Accepted with the remedy
    `next_invoice`: the outcome is reversed, even past its plan's reversal window, and so
    credited on the customer's next invoice (late usage and credits). Accepted with
    `credit_note`: the outcome stands as billed and the caller issues the credit note in
    the same transaction (billing/statements/services.py). Rejected: it stands."""
    if not note.strip():
        raise ValueError("a decision needs a note")
    with transaction.atomic():
        dispute = Dispute.objects.select_for_update().select_related("outcome").get(pk=dispute_id)
        if dispute.status != DisputeStatus.OPEN:
            raise DisputeDecided(f"dispute {dispute_id} is {dispute.status}")
        if accept and remedy == DisputeRemedy.NEXT_INVOICE:
            outcome_reverse(external_id=dispute.outcome.external_id, window=None, now=now)
        dispute.status = DisputeStatus.ACCEPTED if accept else DisputeStatus.REJECTED
        dispute.remedy = remedy if accept else ""
        dispute.note, dispute.decided_by, dispute.decided_at = note.strip(), by, now
        # save(), not update(): the decision is in the audit log.
        dispute.save(update_fields=["status", "remedy", "note", "decided_by", "decided_at"])
    return dispute
