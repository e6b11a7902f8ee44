"""Invoices (one per customer period, closed once), their lines, and the FX rates that
bring other currencies to USD.

The tables keep the names they had when billing was one app (billing_*): moving a model
between apps moved its state, not its data (migrations/0001_initial.py).
"""

from django.db import models
from django.db.models import Q

from billing.plans.models import LineKind, PlanVersion
from metering.models import Customer


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class PushState(models.TextChoices):
    """Where an invoice's mirror in Stripe stands (billing/stripe_sync/services/push.py)."""

    PENDING = "pending", "pending"
    PUSHING = "pushing", "pushing"
    PUSHED = "pushed", "pushed"
    FAILED = "failed", "failed"
    NOT_SENT = "not_sent", "not sent ($0)"


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def standing(self) -> "InvoiceQuerySet":
        """The invoices that stand for their period: not replaced by a reissue (a voided
        invoice nobody reissued still stands: its period was billed, then given up on)."""
        return self.filter(replaced_by__isnull=True)


class Invoice(models.Model):
    """One customer period, billed once: the unique (customer, period_start) among
    invoices not void is the exactly-once guard of closing a period. Its lines are fixed
    when it is created; once finalized it is never edited. Corrections: a credit note, a
    void (and a reissue of the period from the same snapshot: `replaced_by`), or credits
    on a later invoice (billing/invoicing/services/corrections.py)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    # The version it was rated on; `version.invoices` lets plans ask "billed yet?" without
    # reaching up into this app.
    plan_version = models.ForeignKey(PlanVersion, on_delete=models.PROTECT, related_name="invoices")
    currency = models.CharField(max_length=3)
    # Minor units of `currency`: the sum of the lines' amounts.
    total = models.BigIntegerField()
    # draft -> finalized -> paid | void | uncollectible (see billing/invoicing/services/closing.py).
    status = models.CharField(
        max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    closed_at = models.DateTimeField()
    # The close's "invoiced through" mark: its PostgreSQL snapshot (`pg_snapshot` as text,
    # "xmin:xmax:xip,…"). This invoice bills exactly the facts whose transactions the
    # snapshot sees (committed before it was taken); anything committed later is late and
    # goes on the next invoice. See billing/invoicing/watermark.py.
    snapshot = models.TextField(blank=True)
    # The mirror in Stripe (billing/stripe_sync/services/push.py). push_step is the marker set
    # before each Stripe call; a retry repeats that call with the same idempotency key.
    stripe_invoice_id = models.CharField(max_length=100, blank=True)
    # Where the customer reads and pays it, as Stripe answered the finalize (empty until
    # then, or when Stripe gives none).
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    push_state = models.CharField(
        max_length=16, choices=PushState.choices, default=PushState.PENDING
    )
    push_step = models.CharField(max_length=40, blank=True)
    push_attempts = models.PositiveIntegerField(default=0)
    push_error = models.TextField(blank=True)
    # The periodic drift check (billing/stripe_sync/services/push.py): what Stripe says, and
    # how it differs from here ("" when it agrees).
    drift = models.CharField(max_length=300, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    # A void invoice reissued: the invoice that bills its period instead (same snapshot,
    # corrected inputs). Readers of "the invoice of a period" skip replaced ones.
    replaced_by = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaces"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        db_table = "billing_invoice"
        ordering = ["-period_start"]
        # The admin's actions on invoices, each its own permission (on top of
        # change_invoice): a view-only operator can do none of them.
        permissions = [
            ("void_invoice", "Can void invoices"),
            ("mark_uncollectible_invoice", "Can mark invoices uncollectible"),
            ("push_invoice", "Can push invoices to Stripe again"),
            ("reissue_invoice", "Can void and reissue invoices"),
            ("credit_invoice", "Can issue credit notes"),
        ]
        constraints = [
            # Exactly one live invoice per period: a reissue voids the one it replaces.
            models.UniqueConstraint(
                fields=["customer", "period_start"],
                condition=~Q(status="void"),
                name="invoice_once_per_period",
            ),
            models.CheckConstraint(
                condition=Q(replaced_by__isnull=True) | Q(status="void"),
                name="invoice_replaced_is_void",
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")), name="invoice_period_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} {self.period_start:%Y-%m-%d}"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=LineKind.choices)
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=30, decimal_places=12)
    unit_price = models.DecimalField(max_digits=30, decimal_places=12)
    # Minor units of the invoice's currency, rounded once (billing/money.py).
    amount = models.BigIntegerField()
    # What the line bills (billing/plans/pricing.py InvoiceLine): an outcome type, or the feature
    # of a pass-through line (NULL: not a feature's line).
    outcome_type = models.CharField(max_length=100, blank=True)
    feature = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 -- "" is a feature
    # Late usage and credits: the earlier invoice whose period they belong to (their
    # service period); NULL for the invoice's own period.
    source_invoice = models.ForeignKey(
        "Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    stripe_item_id = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "billing_invoiceline"
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position"),
        ]

    def __str__(self) -> str:
        return self.description


class CreditMethod(models.TextChoices):
    """Where a credit note's amount goes (Stripe's credit note fields)."""

    AMOUNT_DUE = "amount_due", "lower what is still due (an unpaid invoice)"
    REFUND = "refund", "refund the payment"
    CUSTOMER_BALANCE = "customer_balance", "credit the customer's Stripe balance"
    OUTSIDE_STRIPE = "outside_stripe", "credited outside Stripe"


class CreditReason(models.TextChoices):
    """Stripe's reasons for a credit note."""

    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"


class CreditNote(models.Model):
    """Money given back on a finalized or paid invoice, line by line, mirrored to Stripe's
    credit notes (billing/stripe_sync/services/credit_notes.py). Never edited; the credit
    notes of an invoice never credit more than it billed, nor a line more than its
    amount. `external_id` is the caller's key: the same one again is the same note."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    external_id = models.CharField(max_length=200)
    number = models.PositiveIntegerField()  # 1, 2, … per invoice
    method = models.CharField(max_length=20, choices=CreditMethod.choices)
    reason = models.CharField(max_length=32, choices=CreditReason.choices, blank=True)
    memo = models.CharField(max_length=500, blank=True)
    currency = models.CharField(max_length=3)
    total = models.BigIntegerField()  # minor units, > 0: the sum of its lines
    # A dispute accepted with a credit note as its remedy (billing/statements/services.py).
    dispute = models.OneToOneField(
        "outcomes.Dispute",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_note",
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The mirror in Stripe, pushed as invoices are (PushState; NOT_SENT: the invoice is
    # not in Stripe, so neither is its credit note).
    stripe_credit_note_id = models.CharField(max_length=100, blank=True)
    pdf = models.URLField(max_length=1000, blank=True)
    push_state = models.CharField(
        max_length=16, choices=PushState.choices, default=PushState.PENDING
    )
    push_attempts = models.PositiveIntegerField(default=0)
    push_error = models.TextField(blank=True)

    class Meta:
        ordering = ["invoice", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "external_id"], name="credit_note_once_per_id"
            ),
            models.UniqueConstraint(fields=["invoice", "number"], name="credit_note_number"),
            models.CheckConstraint(condition=Q(total__gt=0), name="credit_note_positive"),
        ]

    def __str__(self) -> str:
        return f"credit note {self.number} of invoice {self.invoice_id}"


class CreditNoteLine(models.Model):
    """What one credit note line gives back: part or all of an invoice line, or an amount
    of its own (`invoice_line` NULL), and the outcome it credits when a dispute asked."""

    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, null=True, blank=True, related_name="credited"
    )
    description = models.CharField(max_length=300)
    amount = models.BigIntegerField()  # minor units, > 0
    outcome = models.ForeignKey(
        "outcomes.Outcome", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["credit_note", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["credit_note", "position"], name="credit_note_line_position"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_note_line_positive"),
        ]

    def __str__(self) -> str:
        return self.description


class FxRate(models.Model):
    """What one unit of a currency is worth in USD from `effective_from` on (until the
    next rate of that currency). Inference cost is USD; revenue is in each plan's
    currency; these rates bring both to the reporting currency (billing/invoicing/fx.py)."""

    currency = models.CharField(max_length=3)
    effective_from = models.DateTimeField()
    usd_per_unit = models.DecimalField(max_digits=24, decimal_places=12)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_fxrate"
        ordering = ["currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "effective_from"], name="fx_rate_once"),
            models.CheckConstraint(condition=Q(usd_per_unit__gt=0), name="fx_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.usd_per_unit} USD from {self.effective_from:%Y-%m-%d}"


# --- the running rollup ----------------------------------------------------------------------
# What the facts of each customer day add up to now, for the days before the horizon: kept
# by database triggers in the transaction that writes the facts
# (migrations/0003_running_rollup.py), so that a window that nobody has closed yet (a
# preview, an authorization, a live margin) is read from a few rows per day instead of
# every call: billing/invoicing/selectors/running.py. Days are UTC; a window's partial
# days, and the days from the horizon on (the last day or two: calls as they happen), are
# read from the facts themselves; a job folds each day in once it is over
# (billing/invoicing/folding.py).


class RunningHorizon(models.Model):
    """The first UTC day the running rollup does not hold (one row): days before it are
    summed in the rollup, it and later ones read call by call."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    day = models.DateField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="running_horizon_one_row")]

    def __str__(self) -> str:
        return f"rollup up to {self.day}"


class RunningCell(models.Model):
    """The calls of one customer's UTC day in one cell (outcome type × feature × tier ×
    model): what billing/invoicing/selectors/cells.py's Cell holds, for that day."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    day = models.DateField()
    outcome_type = models.CharField(max_length=100)
    feature = models.CharField(max_length=100)
    tier = models.CharField(max_length=50)
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    calls = models.BigIntegerField()
    tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=12)  # USD, priced calls
    unpriced_calls = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "day", "outcome_type", "feature", "tier", "provider", "model"],
                name="running_cell_once",
            )
        ]
        # Every customer's days of a window (the dashboard's cost by model and per success).
        indexes = [models.Index(fields=["day"], name="running_cell_day")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.day} {self.feature or '-'} {self.model}: {self.calls}"


class RunningSeat(models.Model):
    """A premium user's calls on one customer's UTC day and their cost (active seats are
    the distinct users with calls in a period; a seat's cost is what a fair-use cap
    limits: billing/limits)."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    day = models.DateField()
    end_user = models.CharField(max_length=200)
    calls = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=12)  # USD, priced calls

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "day", "end_user"], name="running_seat_once"
            )
        ]
        # Every customer's days of a window (the premium seats' report).
        indexes = [models.Index(fields=["day"], name="running_seat_day")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.day} {self.end_user}: {self.calls}"


class RunningOutcome(models.Model):
    """One customer's outcomes of one type by UTC day of their moment: succeeded and
    reversed ones on the day they succeeded, failed ones on the day they failed."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    day = models.DateField()
    type = models.CharField(max_length=100)
    succeeded = models.BigIntegerField()
    failed = models.BigIntegerField()
    reversed = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "day", "type"], name="running_outcome_once")
        ]
        # Every customer's days of a window (the dashboard's successes by day).
        indexes = [models.Index(fields=["day"], name="running_outcome_day")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.day} {self.type}: {self.succeeded} succeeded"
