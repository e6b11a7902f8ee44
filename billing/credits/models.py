"""A customer's credits: grants, and the append-only ledger of what each grant holds.

A grant's balance is the sum of its entries (its grant, what invoices drew from it, what
came back, what expired or was voided); nothing stores a balance without its entries.
Amounts are exact Decimals in the grant's currency, whole minor units (cents), so that an
invoice's "credits applied" line is exactly what the ledger says was drawn.
"""

from django.db import models
from django.db.models import Q

from metering.models import Customer


class GrantKind(models.TextChoices):
    PAID = "paid", "paid (a top-up)"
    PROMOTIONAL = "promotional", "promotional (free)"
    RECURRING = "recurring", "recurring, from the plan"


class CreditGrant(models.Model):
    """Credits given to a customer: usable by the invoices of the periods it is live in
    ([effective_at, expires_at) overlaps the period), lowest priority first, then the
    earliest expiry."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_grants")
    # The client's id for it (a retry with the same id is the same grant); generated
    # when the grant is made by an operator or by payback itself.
    external_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=GrantKind.choices)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=30, decimal_places=12)
    # Lower is drawn first (0 before 100), then the earliest expiry, then the oldest.
    priority = models.PositiveIntegerField(default=100)
    effective_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    description = models.CharField(max_length=300, blank=True)
    # A grant made to return credits of `returned_from` that is no longer live (a credit
    # for a period it paid: docs/billing.md); its grant entry names that period's invoice.
    returned_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="returned_to"
    )
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer", "priority", "expires_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "external_id"], name="credit_grant_once_per_id"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_grant_positive"),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("effective_at")),
                name="credit_grant_expires_after_effective",
            ),
        ]
        indexes = [models.Index(fields=["customer", "currency"], name="credit_grant_customer")]

    def __str__(self) -> str:
        return f"{self.customer} {self.amount.normalize():f} {self.currency} ({self.kind})"


class EntryKind(models.TextChoices):
    GRANT = "grant", "granted"
    DRAWN = "drawn", "drawn by an invoice"
    RETURNED = "returned", "returned: a credit for a period it paid"
    EXPIRED = "expired", "expired"
    VOIDED = "voided", "voided"


class CreditEntry(models.Model):
    """One movement of a grant's balance: + when granted or returned, − when an invoice
    draws on it, expires or is voided. Never edited or deleted."""

    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    amount = models.DecimalField(max_digits=30, decimal_places=12)  # signed
    # The invoice that drew it, or whose close returned it. By name: invoicing is above.
    invoice = models.ForeignKey(
        "invoicing.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_entries",
    )
    # Returned credits: the invoice of the period they had paid (a "returned" entry, or
    # the grant entry of a grant made to return them).
    source_invoice = models.ForeignKey(
        "invoicing.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="returned_credit_entries",
    )
    # When it took effect: the grant's effective time, the invoice's period end, the
    # expiry, or when it was voided.
    at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            # Once each: a grant's grant, expiry and void; an invoice's draw on a grant.
            models.UniqueConstraint(
                fields=["grant", "kind"],
                condition=Q(kind__in=[EntryKind.GRANT, EntryKind.EXPIRED, EntryKind.VOIDED]),
                name="credit_entry_once_per_grant",
            ),
            models.UniqueConstraint(
                fields=["grant", "invoice"],
                condition=Q(kind=EntryKind.DRAWN),
                name="credit_entry_one_draw_per_invoice",
            ),
            models.UniqueConstraint(
                fields=["grant", "invoice", "source_invoice"],
                condition=Q(kind=EntryKind.RETURNED),
                name="credit_entry_one_return_per_invoice",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=[EntryKind.DRAWN, EntryKind.RETURNED], invoice__isnull=False)
                | (~Q(kind__in=[EntryKind.DRAWN, EntryKind.RETURNED]) & Q(invoice__isnull=True)),
                name="credit_entry_draw_has_invoice",
            ),
        ]
        indexes = [models.Index(fields=["grant", "at"], name="credit_entry_grant")]

    def __str__(self) -> str:
        return f"{self.grant_id} {self.kind} {self.amount.normalize():f}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "pending (its Stripe invoice is being made)"
    OPEN = "open", "open (Stripe collects it)"
    PAID = "paid", "paid (its grant is made)"
    FAILED = "failed", "failed (Stripe refused it)"
    VOID = "void", "void"


class TopUp(models.Model):
    """Credits bought through Stripe: an invoice Stripe charges, and the paid grant made
    once Stripe says it is paid (its webhook)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="top_ups")
    external_id = models.CharField(max_length=200)  # the backend's id, or payback's
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=30, decimal_places=12)
    auto = models.BooleanField(default=False)  # made by the auto top-up
    status = models.CharField(
        max_length=8, choices=TopUpStatus.choices, default=TopUpStatus.PENDING
    )
    # The mirror in Stripe, pushed as invoices are (billing/stripe_sync/services/top_ups.py):
    # the step marker before each call, under idempotency keys from this row.
    stripe_invoice_id = models.CharField(max_length=100, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    push_step = models.CharField(max_length=40, blank=True)
    push_error = models.TextField(blank=True)
    grant = models.OneToOneField(
        CreditGrant, on_delete=models.PROTECT, null=True, blank=True, related_name="top_up"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "external_id"], name="top_up_once_per_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="top_up_positive"),
        ]
        indexes = [models.Index(fields=["stripe_invoice_id"], name="top_up_stripe_invoice")]

    def __str__(self) -> str:
        return f"{self.customer} {self.amount.normalize():f} {self.currency} ({self.status})"


class AutoTopUp(models.Model):
    """Buy `amount` when what the customer's credits hold falls below `threshold`: once
    per crossing (`armed` until it fires; armed again once the balance is back up)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="auto_top_up")
    currency = models.CharField(max_length=3)
    threshold = models.DecimalField(max_digits=30, decimal_places=12)
    amount = models.DecimalField(max_digits=30, decimal_places=12)
    armed = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.customer}: {self.amount.normalize():f} below {self.threshold.normalize():f}"
