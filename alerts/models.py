"""Alert rules over the unit economics, the alerts they fire (once per rule, subject and
period) and their delivery to operators' webhook endpoints."""

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from alerts.webhooks import UnsafeUrl, url_check


class AlertKind(models.TextChoices):
    MARGIN_BELOW = "margin_below", "margin below a threshold (percent; 0 = negative margin)"
    COST_PER_SUCCESS_UP = (
        "cost_per_success_up",
        "cost per successful outcome up more than the threshold (percent) on the previous period",
    )
    UNPRICED_CALLS = "unpriced_calls", "calls without a price"
    PREMIUM_BELOW_BREAK_EVEN = (
        "premium_below_break_even",
        "a premium tier whose seats' AI cost exceeds their fees",
    )
    MISSING_FX_RATE = (
        "missing_fx_rate",
        "an FX rate that outcome values need and nobody entered: their closes wait for it",
    )
    CREDITS_BELOW = (
        "credits_below",
        "what a customer has available in its credits below an amount (once per period)",
    )
    CREDITS_EXHAUSTED = (
        "credits_exhausted",
        "a customer with credits has nothing available (once per period)",
    )
    BUDGET_REACHED = (
        "budget_reached",
        "a customer's budget or cost budget of the period is reached (once per period)",
    )
    GRANT_EXPIRING = (
        "grant_expiring",
        "credits left in a grant expiring within a number of days (once per grant)",
    )
    DISPUTE_RATE = (
        "dispute_rate",
        "an outcome type's disputes above a threshold (percent) of its successes this month",
    )


class AlertScope(models.TextChoices):
    CUSTOMER = "customer", "per customer"
    OUTCOME_TYPE = "outcome_type", "per outcome type"


class AlertRule(models.Model):
    """What to watch. Evaluated by the beat task alerts.tasks.evaluate_alerts over the
    calendar month (UTC) so far."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    # margin_below and cost_per_success_up: per customer or per outcome type.
    scope = models.CharField(max_length=16, choices=AlertScope.choices, default=AlertScope.CUSTOMER)
    # margin_below: fire under this margin percent; cost_per_success_up: fire above this
    # rise in percent. Unused by the other kinds.
    threshold_percent = models.DecimalField(max_digits=9, decimal_places=2, default=0)
    # credits_below: fire below this amount (the customer's plan currency).
    threshold_amount = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    # grant_expiring: fire this many days before.
    within_days = models.PositiveIntegerField(default=7)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """A rule that fired for one subject ("customer:acme", "outcome_type:resolution",
    "model:openai:gpt-4o", "plan:max", "grant:acme:welcome") in one period (the month;
    the customer's billing period for credits and budgets; a grant's expiry): the unique
    constraint makes a rerun of the evaluation fire nothing new."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=300)
    period_start = models.DateTimeField()
    message = models.TextField()
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject", "period_start"], name="alert_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.subject} ({self.period_start:%Y-%m})"


def _webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(32)


class WebhookEndpoint(models.Model):
    """Where alerts are posted, signed with `secret` (alerts/webhooks.py). URLs that reach
    loopback, private, link-local or metadata addresses are refused when saved and again
    when each alert is sent."""

    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=100, default=_webhook_secret)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        try:
            url_check(self.url)
        except UnsafeUrl as refused:
            raise ValidationError({"url": str(refused)}) from refused


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class AlertDelivery(models.Model):
    """One alert to one endpoint, delivered once (unique), retried with backoff."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alert", "endpoint"], name="alert_delivery_once"),
            models.CheckConstraint(
                condition=~Q(state=DeliveryState.DELIVERED) | Q(delivered_at__isnull=False),
                name="alert_delivery_delivered_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alert} -> {self.endpoint} ({self.state})"
