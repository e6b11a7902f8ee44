"""Plans (versioned price books) and which plan each customer is on.

Money here is Decimal in the plan's currency with 12 decimal places (prices per unit
may be fractions of a cent); invoice amounts, computed in billing/rating.py, are integer
minor units of that currency.
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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
    included_quantity = models.PositiveIntegerField(default=0)
    tier_mode = models.CharField(max_length=10, choices=TierMode.choices, default=TierMode.NONE)
    package_size = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["plan_version", "outcome_type"], name="outcome_price_unique_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan_version}: {self.outcome_type}"


class PriceTier(models.Model):
    outcome_price = models.ForeignKey(OutcomePrice, on_delete=models.CASCADE, related_name="tiers")
    # Units up to and including this count; NULL for the last tier ("and above").
    up_to = models.PositiveIntegerField(null=True, blank=True)
    unit_price = models.DecimalField(**PRICE)

    class Meta:
        ordering = [models.F("up_to").asc(nulls_last=True)]

    def __str__(self) -> str:
        return f"up to {self.up_to or '∞'}: {self.unit_price}"


class TokenPassThrough(models.Model):
    """Inference cost billed at cost × (1 + markup), for one feature or ('' ) all others."""

    plan_version = models.ForeignKey(
        PlanVersion, on_delete=models.CASCADE, related_name="pass_throughs"
    )
    feature = models.CharField(max_length=100, blank=True)
    markup = models.DecimalField(max_digits=9, decimal_places=6, default=0)

    class Meta:
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
    day to anchor day in `timezone` (billing/periods.py)."""

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
        constraints = [
            models.CheckConstraint(
                condition=Q(billing_anchor_day__gte=1, billing_anchor_day__lte=31),
                name="subscription_anchor_day_in_month",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} on {self.plan}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class Invoice(models.Model):
    """One customer period, billed once: the unique (customer, period_start) is the
    exactly-once guard of closing a period. Its lines are fixed when it is created;
    once finalized it is never edited (corrections: void, or credits on a later invoice)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    plan_version = models.ForeignKey(PlanVersion, on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    # Minor units of `currency`: the sum of the lines' amounts.
    total = models.BigIntegerField()
    # draft -> finalized -> paid | void | uncollectible (see billing/services/invoicing.py).
    status = models.CharField(
        max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    closed_at = models.DateTimeField()
    # The close's "invoiced through" mark: its PostgreSQL snapshot (`pg_snapshot` as text,
    # "xmin:xmax:xip,…"). This invoice bills exactly the facts whose transactions the
    # snapshot sees (committed before it was taken); anything committed later is late and
    # goes on the next invoice. See billing/watermark.py.
    snapshot = models.TextField(blank=True)
    # The mirror in Stripe (billing/services/stripe_push.py). push_step is the marker set
    # before each Stripe call; a retry repeats that call with the same idempotency key.
    stripe_invoice_id = models.CharField(max_length=100, blank=True)
    # Where the customer reads and pays it, as Stripe answered the finalize (empty until
    # then, or when Stripe gives none).
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    push_state = models.CharField(
        max_length=16,
        choices=[
            ("pending", "pending"),
            ("pushing", "pushing"),
            ("pushed", "pushed"),
            ("failed", "failed"),
            ("not_sent", "not sent ($0)"),
        ],
        default="pending",
    )
    push_step = models.CharField(max_length=40, blank=True)
    push_attempts = models.PositiveIntegerField(default=0)
    push_error = models.TextField(blank=True)
    # The periodic drift check (billing/services/stripe_push.py): what Stripe says, and
    # how it differs from here ("" when it agrees).
    drift = models.CharField(max_length=300, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start"]
        # The admin's actions on invoices, each its own permission (on top of
        # change_invoice): a view-only operator can do none of them.
        permissions = [
            ("void_invoice", "Can void invoices"),
            ("mark_uncollectible_invoice", "Can mark invoices uncollectible"),
            ("push_invoice", "Can push invoices to Stripe again"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start"], name="invoice_once_per_period"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")), name="invoice_period_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} {self.period_start:%Y-%m-%d}"


class LineKind(models.TextChoices):
    BASE_FEE = "base_fee", "base fee"
    OUTCOME = "outcome", "succeeded outcomes"
    INCLUDED = "included", "outcomes included free"
    SEATS = "seats", "premium seats"
    PASS_THROUGH = "pass_through", "AI usage at cost plus markup"
    MINIMUM = "minimum", "top-up to the minimum spend"
    LATE_USAGE = "late_usage", "late usage of an earlier period"
    CREDIT = "credit", "credit for an earlier period"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=LineKind.choices)
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=30, decimal_places=12)
    unit_price = models.DecimalField(max_digits=30, decimal_places=12)
    # Minor units of the invoice's currency, rounded once (billing/money.py).
    amount = models.BigIntegerField()
    # What the line bills (billing/rating.py InvoiceLine): an outcome type, or the feature
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
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position"),
        ]

    def __str__(self) -> str:
        return self.description


class Reconciliation(models.Model):
    """A closed period's margin: what it billed against what its AI cost."""

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, related_name="reconciliation")
    revenue = models.DecimalField(max_digits=30, decimal_places=12)  # invoice currency
    # USD: the priced calls the invoice covers, failed outcomes and unbilled features
    # included: its period's, and those of earlier periods that arrived or were priced
    # since the close before (cost follows revenue).
    inference_cost = models.DecimalField(max_digits=30, decimal_places=12)
    calls = models.BigIntegerField()
    unpriced_calls = models.BigIntegerField()
    # Only when revenue is in USD (the margin report converts the others with FX rates)
    # and some of the calls are priced; NULL otherwise.
    margin = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    margin_percent = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    # Made after the close (billing/services/reconciliation.py), with the cells: per
    # outcome type, [succeeded, failed, reversed] in the period; NULL until then.
    outcomes = models.JSONField(default=dict, blank=True)
    breakdown_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Revenue, cost and margin of every customer: the dashboard and its CSV need it.
        permissions = [("view_analytics", "Can view the unit-economics dashboard")]

    def __str__(self) -> str:
        return f"{self.invoice}: margin {self.margin}"


class ReconciliationCell(models.Model):
    """A closed period's calls of one outcome type, feature, tier and model, with the
    share of the invoice's revenue they earned (billing/selectors/margins.py says how it is
    spread). The cells of a period sum to its invoice: their revenue to the invoice total,
    their cost to every call of the period stored by the close."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="cost_cells")
    outcome_type = models.CharField(max_length=100, blank=True)  # "": no outcome
    feature = models.CharField(max_length=100, blank=True)
    tier = models.CharField(max_length=50, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    calls = models.BigIntegerField()
    tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=12)  # USD, priced calls
    unpriced_calls = models.BigIntegerField()
    revenue = models.DecimalField(max_digits=30, decimal_places=12)  # invoice currency

    def __str__(self) -> str:
        return f"{self.invoice}: {self.outcome_type}/{self.feature}/{self.model}"


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
        ordering = ["subscription", "effective_at"]

    def __str__(self) -> str:
        return f"{self.subscription}: {self.seats} seats from {self.effective_at:%Y-%m-%d}"


class StripeCustomer(models.Model):
    """The Stripe customer of a payback customer (its metadata carries the external id)."""

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="+")
    stripe_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.stripe_id


class StripeWebhookDelivery(models.Model):
    """A webhook request. One whose signature verifies is kept whole with its event (until
    STRIPE_WEBHOOK_RETENTION_DAYS after it was processed); one that does not is kept for
    diagnosis only: its first bytes and why it was refused, the newest
    STRIPE_WEBHOOK_REFUSALS_KEPT of them (billing/services/webhooks.py)."""

    body = models.BinaryField()  # refused: its first bytes only (`size` says how many)
    size = models.PositiveIntegerField(default=0)  # bytes received
    signature = models.CharField(max_length=1000, blank=True)
    remote_address = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    verified = models.BooleanField(null=True)  # None: not checked yet (older paybacks)
    refusal = models.CharField(max_length=300, blank=True)  # why, when not verified
    event = models.ForeignKey(
        "StripeEvent", on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )

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
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


class FxRate(models.Model):
    """What one unit of a currency is worth in USD from `effective_from` on (until the
    next rate of that currency). Inference cost is USD; revenue is in each plan's
    currency; these rates bring both to the reporting currency (billing/fx.py)."""

    currency = models.CharField(max_length=3)
    effective_from = models.DateTimeField()
    usd_per_unit = models.DecimalField(max_digits=24, decimal_places=12)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "effective_from"], name="fx_rate_once"),
            models.CheckConstraint(condition=Q(usd_per_unit__gt=0), name="fx_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.usd_per_unit} USD from {self.effective_from:%Y-%m-%d}"
