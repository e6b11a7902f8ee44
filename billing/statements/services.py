"""Disputes decided with a credit note: the operator accepts a customer's dispute and gives
back, on the invoice that billed the outcome, exactly the fee its statement shows for it
(billing/statements/selectors.py), in the same transaction as the decision.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing.invoicing.models import CreditNote
from billing.invoicing.services import CreditLineRequest, CreditNoteRequest, credit_note_issue
from billing.money import from_minor_units, to_minor_units
from billing.statements.selectors import dispute_credit_terms
from outcomes.models import Dispute, DisputeRemedy
from outcomes.services import dispute_decide


def dispute_credit(
    *, dispute_id: int, note: str, by: str, now: datetime, method: str = ""
) -> CreditNote:
    """Accept an open dispute with a credit note on the invoice that billed its outcome,
    for the fee that outcome carried (rounded once to minor units). Refused (409, nothing
    decided) when no invoice billed it yet, when it was billed nothing (included, a
    package's later outcome, a value without its rate), or when the invoice cannot be
    credited; the operator may then accept it with the next invoice's credit instead."""
    with transaction.atomic():
        dispute = Dispute.objects.select_related("outcome").get(pk=dispute_id)
        outcome = dispute.outcome
        invoice, billed = dispute_credit_terms(dispute=dispute)
        amount = to_minor_units(billed.fee, invoice.currency)
        dispute_decide(
            dispute_id=dispute.pk,
            accept=True,
            note=note,
            by=by,
            now=now,
            remedy=DisputeRemedy.CREDIT_NOTE,
        )
        credit, _ = credit_note_issue(
            invoice_id=invoice.pk,
            request=CreditNoteRequest(
                external_id=f"dispute:{dispute.pk}",
                method=method,
                reason="product_unsatisfactory",
                memo=f"Disputed {outcome.type} {outcome.external_id}: {note.strip()}"[:500],
                lines=(
                    CreditLineRequest(
                        amount=from_minor_units(amount, invoice.currency),
                        invoice_line=billed.line,
                        description=f"Disputed {outcome.type} {outcome.external_id}",
                        outcome_id=outcome.pk,
                    ),
                ),
            ),
            by=by,
            dispute_id=dispute.pk,
        )
    return credit
