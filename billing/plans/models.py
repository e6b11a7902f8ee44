"""Plans (versioned price books) and which plan each customer is on: subscriptions,
plan changes and seat changes.

Money here is Decimal in the plan's currency with 12 decimal places (prices per unit
may be fractions of a cent); what a plan charges is computed in billing/plans/pricing.py,
in integer minor units of that currency.

The tables keep the names they had when billing was one app (billing_*): moving a model
between apps moved its state, not its data (migrations/0001_initial.py).
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone as django_timezone

from metering.models import Customer

PRICE = {"max_digits": 24, "decimal_places": 12}


class Plan(models.Model):
    code = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_plan"
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class SeatMode(models.TextChoices):
    FIXED = "fixed", "fixed seats (the subscription's premium_seats)"
    ACTIVE = "active", "active seats (distinct premium users with calls in the period)"


class PlanVersion(models.Model):
    """One version of a plan's prices. A customer is billed on the newest version of its
    plan; loading a changed price book adds a version instead of editing one."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    # ISO 4217; its minor units (JPY 0, USD 2, KWD 3) come from babel (billing/money.py).
    currency = models.CharField(max_length=3)
    base_fee = models.DecimalField(**PRICE, default=0)
    minimum_spend = models.DecimalField(**PRICE, null=True, blank=True)
    premium_seat_fee = models.DecimalField(**PRICE, null=True, blank=True)
    seat_mode = models.CharField(max_length=8, choices=SeatMode.choices, default=SeatMode.FIXED)
    reversal_window_days = models.PositiveIntegerField(default=7)
    # How Stripe collects: charge the customer's default payment method, or e-mail the
    # invoice with `days_until_due`.
    collection_method = models.CharField(
        max_length=24,
        choices=[
            ("charge_automatically", "charge automatically"),
            ("send_invoice", "send invoice"),
        ],
        default="send_invoice",
    )
    days_until_due = models.PositiveIntegerField(default=30)
    # Features whose AI the plan gives away (kept for retention, not billed): the margin
    # report shows their calls as cost with zero revenue, and no fee is spread over them.
    included_features = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    # The margin the premium tier should keep (percent of the seat fees); the premium
    # break-even report suggests the fair-use cap per seat that keeps it.
    premium_target_margin_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    # Credits granted with each period, as the plan document's `credits` (amounts as
    # decimal strings): billing/credits grants them.
    recurring_credits = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_planversion"
        ordering = ["plan", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "version"], name="plan_version_unique"),
            models.CheckConstraint(
                condition=Q(base_fee__gte=0)
                & (Q(minimum_spend__isnull=True) | Q(minimum_spend__gte=0))
                & (Q(premium_seat_fee__isnull=True) | Q(premium_seat_fee__gte=0)),
                name="plan_version_fees_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} v{self.version}"


class PriceModel(models.TextChoices):
    UNIT = "unit", "a price per succeeded outcome"
    PERCENTAGE = "percentage", "a percentage of the outcome's value, with floor and cap"


class TierMode(models.TextChoices):
    NONE = "none", "no tiers"
    GRADUATED = "graduated", "graduated: each unit at the price of the tier it falls in"
    VOLUME = "volume", "volume: every unit at the price of the tier the total reaches"


class LineKind(models.TextChoices):
    """The kinds of line a plan's pricing makes (billing/plans/pricing.py); each invoice
    line keeps its kind."""

    BASE_FEE = "base_fee", "base fee"
    OUTCOME = "outcome", "succeeded outcomes"
    INCLUDED = "included", "outcomes included free"
    SEATS = "seats", "premium seats"
    PASS_THROUGH = "pass_through", "AI usage at cost plus markup"
    TIER_FEE = "tier_fee", "flat fee of a price tier reached"
    MINIMUM = "minimum", "top-up to the minimum spend"
    LATE_USAGE = "late_usage", "late usage of an earlier period"
    CREDIT = "credit", "credit for an earlier period"
    CREDITS_APPLIED = "credits_applied", "free credits applied (a discount)"
    PREPAID_APPLIED = "prepaid_applied", "bought credits applied"
    # Credit of an earlier period that credits had paid: back to the credits.
    CREDITS_RETURNED = "credits_returned", "free credits returned"
    PREPAID_RETURNED = "prepaid_returned", "bought credits returned"


class OutcomePrice(models.Model):
    """How one outcome type is billed: per succeeded outcome, never for failures."""

    plan_version = models.ForeignKey(
        PlanVersion, on_delete=models.CASCADE, related_name="outcome_prices"
    )
    outcome_type = models.CharField(max_length=100)
    model = models.CharField(max_length=12, choices=PriceModel.choices, default=PriceModel.UNIT)
    # UNIT: the price of one outcome (of one block with package_size); ignored with tiers.
    unit_price = models.DecimalField(**PRICE, null=True, blank=True)
    # PERCENTAGE: percent of the value (5 = 5 %), each unit clamped to [floor, cap].
    percentage = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    floor = models.DecimalField(**PRICE, null=True, blank=True)
    cap = models.DecimalField(**PRICE, null=True, blank=True)
    # PERCENTAGE: a fee per billable unit added to its percentage, inside the clamp.
    fixed_fee = models.DecimalField(**PRICE, null=True, blank=True)
    # PERCENTAGE: the first this much of value in a period (after the included units) is
    # not charged (billing/invoicing/selectors/rating.py, PERCENTAGE_FEE_SQL).
    free_value = models.DecimalField(**PRICE, null=True, blank=True)
    included_quantity = models.PositiveIntegerField(default=0)
    tier_mode = models.CharField(max_length=10, choices=TierMode.choices, default=TierMode.NONE)
    package_size = models.PositiveIntegerField(null=True, blank=True)
    # UNIT by dimension: a property of the outcome (`channel`) and the unit price of some
    # of its values ([{"value": "voice", "unit_price": "1.49"}, ...]); any other value, or
    # none, pays unit_price.
    dimension = models.CharField(max_length=100, blank=True)
    dimension_prices = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "billing_outcomeprice"
        constraints = [
            models.UniqueConstraint(
                fields=["plan_version", "outcome_type"], name="outcome_price_unique_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan_version}: {self.outcome_type}"


class PriceTier(models.Model):
    """One tier of a tiered price: a price per unit in it, a flat fee for reaching it, or
    both (a tier without a unit price bills its units at 0, and still counts them)."""

    outcome_price = models.ForeignKey(OutcomePrice, on_delete=models.CASCADE, related_name="tiers")
    # Units up to and including this count; NULL for the last tier ("and above").
    up_to = models.PositiveIntegerField(null=True, blank=True)
    unit_price = models.DecimalField(**PRICE, null=True, blank=True)
    # Billed once when the period's units reach the tier (graduated: every tier reached;
    # volume: the tier the total reaches).
    flat_fee = models.DecimalField(**PRICE, null=True, blank=True)
    # A graduated percentage: percent of the value in the tier (`up_to` then bounds the
    # period's cumulative value, in the plan's currency); no unit_price.
    percentage = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)

    class Meta:
        db_table = "billing_pricetier"
        ordering = [models.F("up_to").asc(nulls_last=True)]

    def __str__(self) -> str:
        flat = f" + {self.flat_fee} flat" if self.flat_fee is not None else ""
        return f"up to {self.up_to or '∞'}: {self.unit_price or 0}{flat}"


class TokenPassThrough(models.Model):
    """Inference cost billed at cost × (1 + markup), for one feature or ('' ) all others."""

    plan_version = models.ForeignKey(
        PlanVersion, on_delete=models.CASCADE, related_name="pass_throughs"
    )
    feature = models.CharField(max_length=100, blank=True)
    markup = models.DecimalField(max_digits=9, decimal_places=6, default=0)
    # By a property of the call (its tier, provider or model): the markup of some of its
    # values ([{"value": "premium", "markup": "0.5"}, ...]); any other value pays `markup`.
    dimension = models.CharField(
        max_length=16,
        blank=True,
        choices=[("tier", "tier"), ("provider", "provider"), ("model", "model")],
    )
    dimension_markups = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "billing_tokenpassthrough"
        constraints = [
            models.UniqueConstraint(
                fields=["plan_version", "feature"], name="pass_through_unique_feature"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan_version}: {self.feature or 'all features'} +{self.markup}"


class Subscription(models.Model):
    """The plan a customer started on and its fixed premium seats then (later changes:
    PlanChange, SeatChange), and how its periods run: from `started_at`, then from anchor
    day to anchor day in `timezone` (billing/plans/periods.py)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    premium_seats = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=django_timezone.now)
    # 1-31; a later day than a month has means that month's last day.
    billing_anchor_day = models.PositiveSmallIntegerField(default=1)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA, e.g. Europe/Berlin")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_subscription"
        constraints = [
            models.CheckConstraint(
                condition=Q(billing_anchor_day__gte=1, billing_anchor_day__lte=31),
                name="subscription_anchor_day_in_month",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} on {self.plan}"


class PlanChange(models.Model):
    """A change of plan. It takes effect at the start of the period after the one it was
    made in: a period is billed on one plan."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="plan_changes"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_planchange"
        ordering = ["subscription", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "effective_from"], name="plan_change_once_per_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription}: {self.plan} from {self.effective_from:%Y-%m-%d}"


class SeatChange(models.Model):
    """A change of fixed premium seats, effective at once; a period's seats are prorated
    by day over the changes made in it."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="seat_changes"
    )
    seats = models.PositiveIntegerField()
    effective_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_seatchange"
        ordering = ["subscription", "effective_at"]

    def __str__(self) -> str:
        return f"{self.subscription}: {self.seats} seats from {self.effective_at:%Y-%m-%d}"
