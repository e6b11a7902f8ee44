from django.db import models
from django.db.models import Q

from metering.fields import TransactionIdField
from metering.models import Customer


class OutcomeStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"


# What a client sends with an outcome; `reversed` has its endpoint of its own. (msgspec's
# Literal in schemas.py spells them out: tests/outcomes hold the two equal.)
SENT_STATUSES = (OutcomeStatus.PENDING, OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED)


class Outcome(models.Model):
    """An AI action and what became of it: a resolution, a drafted e-mail, a negotiated
    discount. Usage events name it by `external_id` (their `outcome`), before or after it
    arrives, which is how each outcome knows what it cost."""

    # The client's id: unique (the exactly-once guard of POST /v1/outcomes).
    external_id = models.CharField(max_length=200, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="outcomes")
    type = models.CharField(max_length=100)
    # pending -> succeeded | failed; succeeded -> reversed (within the plan's window).
    # No other move: see outcomes/services.py.
    status = models.CharField(max_length=16, choices=OutcomeStatus.choices)
    occurred_at = models.DateTimeField(help_text="When the action started (its first status).")
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # Server time the success was stored (for people; billing goes by succeeded_xid).
    succeeded_recorded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    # The watermark (billing/invoicing/watermark.py): the transactions that made it succeeded and
    # reversed, stamped by a database trigger on every write (outcomes migration 0002), so
    # that a close bills what its snapshot saw by commit order. NULL: not (yet) in that
    # status, or moved there before payback stamped them (seen by every close since).
    succeeded_xid = TransactionIdField(null=True, blank=True, editable=False)
    reversed_xid = TransactionIdField(null=True, blank=True, editable=False)
    # Money the action saved or earned, for value-based prices; with its ISO 4217
    # currency, both or neither.
    value = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    value_currency = models.CharField(max_length=3, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="outcome_customer_time"),
            models.Index(fields=["customer", "type", "status"], name="outcome_customer_type"),
            # Every customer's successes by time: the dashboard's successes of the days
            # the running rollup does not hold yet (billing/invoicing/selectors/running.py).
            models.Index(
                fields=["succeeded_at"],
                name="outcome_success_time",
                condition=Q(status="succeeded"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__isnull=True, value_currency="")
                | Q(value__isnull=False, value__gte=0) & ~Q(value_currency=""),
                name="outcome_value_with_currency",
            ),
            models.CheckConstraint(
                condition=~Q(status=OutcomeStatus.SUCCEEDED)
                | Q(succeeded_at__isnull=False, succeeded_recorded_at__isnull=False),
                name="outcome_succeeded_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=OutcomeStatus.REVERSED)
                | Q(succeeded_at__isnull=False, reversed_at__isnull=False),
                name="outcome_reversed_was_succeeded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.external_id} ({self.status})"


class DisputeStatus(models.TextChoices):
    OPEN = "open"
    ACCEPTED = "accepted"  # credited: on the next invoice, or by a credit note (`remedy`)
    REJECTED = "rejected"  # it stands


class DisputeRemedy(models.TextChoices):
    """How an accepted dispute is credited, the operator's choice."""

    NEXT_INVOICE = "next_invoice", "reverse the outcome: credited on the next invoice"
    CREDIT_NOTE = "credit_note", "a credit note on the invoice that billed it"


class Dispute(models.Model):
    """A customer contests a billed outcome (sent by the product backend on its behalf);
    an operator accepts or rejects it in the admin, with a note (audited)."""

    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="disputes")
    reason = models.TextField(max_length=2000)
    status = models.CharField(
        max_length=16, choices=DisputeStatus.choices, default=DisputeStatus.OPEN
    )
    note = models.TextField(blank=True, help_text="The operator's, with the decision.")
    remedy = models.CharField(max_length=16, choices=DisputeRemedy.choices, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One open dispute per outcome: sending it again answers with that one.
            models.UniqueConstraint(
                fields=["outcome"],
                condition=Q(status=DisputeStatus.OPEN),
                name="dispute_one_open_per_outcome",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="dispute_status_time")]

    def __str__(self) -> str:
        return f"dispute of {self.outcome.external_id} ({self.status})"
