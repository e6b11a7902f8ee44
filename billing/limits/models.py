"""A customer's spend limit and the reservations authorizations hold against it."""

from django.db import models
from django.db.models import Q

from billing.plans.models import Plan
from metering.models import Customer


class LimitMode(models.TextChoices):
    NONE = "none", "none: every authorization is allowed"
    HARD = "hard", "hard: refuse what exceeds the available amount"
    SOFT = "soft", "soft: allow, and say it exceeds"


class SpendLimit(models.Model):
    """How authorizations of a customer's spend are answered (none without a row), and
    what they are checked against: its credits, and budgets per billing period (each
    period starts with the whole budget)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="spend_limit")
    mode = models.CharField(max_length=8, choices=LimitMode.choices, default=LimitMode.NONE)
    # Check against what credits hold (prepaid); off for a postpaid customer with budgets.
    credits = models.BooleanField(default=True)
    # What the period may bill (plan currency), and what its AI may cost payback (USD).
    budget = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    cost_budget = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    # Stop serving a premium seat (an end user) whose AI has cost its fair-use cap this
    # period: the plan's, from the premium break-even report (FairUseCap), or this one
    # (USD per seat) when set.
    fair_use = models.BooleanField(default=False)
    seat_cost_cap = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.customer}: {self.mode}"


class FairUseCap(models.Model):
    """A plan's fair-use cap per premium seat (USD per period), as the premium break-even
    report computes it over a window of past usage (billing/analytics/selectors/premium.py):
    the largest cost per seat such that, every seat capped there, the tier keeps its target
    margin. None: no cap is needed (the seats' cost stays within it). Made by a job
    (limits.tasks.compute_fair_use_caps) from the last whole UTC month."""

    plan = models.OneToOneField(Plan, on_delete=models.CASCADE, related_name="fair_use_cap")
    cap = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.plan}: {self.cap if self.cap is not None else 'no cap'} USD per seat"


class ReservationStatus(models.TextChoices):
    OPEN = "open"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class Reservation(models.Model):
    """An amount held for what a backend is about to do, until it is settled (the actual
    amount is known), released, or its time runs out. Only open reservations hold."""

    # Its id in the API: payback's, unique (`res_…`).
    public_id = models.CharField(max_length=40, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="reservations")
    # The backend's id for the authorization (a retry with it is the same reservation).
    external_id = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=30, decimal_places=12)
    # What it is for, when the backend said it in outcomes.
    outcome_type = models.CharField(max_length=100, blank=True)
    quantity = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=8, choices=ReservationStatus.choices, default=ReservationStatus.OPEN
    )
    expires_at = models.DateTimeField()
    settled_amount = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "external_id"], name="reservation_once_per_id"
            ),
            # 0: what was asked bills nothing (an included outcome); it still has an id.
            models.CheckConstraint(condition=Q(amount__gte=0), name="reservation_not_negative"),
        ]
        indexes = [
            models.Index(
                fields=["customer"],
                condition=Q(status=ReservationStatus.OPEN),
                name="reservation_open",
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(status=ReservationStatus.OPEN),
                name="reservation_open_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.amount.normalize():f} {self.currency} ({self.status})"
