"""What payback keeps of Stripe: each customer's Stripe customer, the webhook
deliveries and the verified events they carried.

The tables keep the names they had when billing was one app (billing_*): moving a model
between apps moved its state, not its data (migrations/0001_initial.py).
"""

from django.db import models

from metering.models import Customer


class StripeCustomer(models.Model):
    """The Stripe customer of a payback customer (its metadata carries the external id)."""

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="+")
    stripe_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_stripecustomer"

    def __str__(self) -> str:
        return self.stripe_id


class StripeWebhookDelivery(models.Model):
    """A webhook request. One whose signature verifies is kept whole with its event (until
    STRIPE_WEBHOOK_RETENTION_DAYS after it was processed); one that does not is kept for
    diagnosis only: its first bytes and why it was refused, the newest
    STRIPE_WEBHOOK_REFUSALS_KEPT of them (billing/stripe_sync/services/webhooks.py)."""

    body = models.BinaryField()  # refused: its first bytes only (`size` says how many)
    size = models.PositiveIntegerField(default=0)  # bytes received
    signature = models.CharField(max_length=1000, blank=True)
    remote_address = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    verified = models.BooleanField(default=False)
    refusal = models.CharField(max_length=300, blank=True)  # why, when not verified
    event = models.ForeignKey(
        "StripeEvent", on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )

    class Meta:
        db_table = "billing_stripewebhookdelivery"

    def __str__(self) -> str:
        return f"delivery {self.pk} ({'verified' if self.verified else 'unverified'})"


class StripeEvent(models.Model):
    """A verified Stripe event, processed once: the unique Stripe event id is the guard
    against duplicate and concurrent deliveries."""

    stripe_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "billing_stripeevent"
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
