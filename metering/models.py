from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q

from metering.fields import TransactionIdField, current_transaction_id


class Customer(models.Model):
    """The operator's customer, named by the operator's own `external_id` ("acme")."""

    external_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    # ISO 4217, upper case. Inference costs are always USD; this is the billing currency.
    currency = models.CharField(max_length=3, default="USD")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id


class CostSource(models.TextChoices):
    EXPLICIT = "explicit", "explicit cost sent with the event"
    OVERRIDE = "override", "operator price override"
    CATALOG = "catalog", "genai-prices catalog"
    UNPRICED = "unpriced", "unpriced (no price known yet)"


class UsageEvent(models.Model):
    """One LLM call. A fact: written once at ingest and never edited, except that an
    unpriced event gets its cost when a price for its model arrives."""

    # The client's id for the call, its idempotency key. Unique through EventKey, not
    # here: this table is to be partitioned by month, and a unique index on a
    # partitioned table must include the partition key. Not indexed here either: an
    # event is found by id through its EventKey (customer and timestamp), see
    # selectors.event_find.
    event_id = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, db_index=False)
    timestamp = models.DateTimeField()
    # Server time of receipt, stamped before the ingest commits: for people. What a close
    # saw goes by recorded_xid below (billing/invoicing/watermark.py).
    received_at = models.DateTimeField()
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    # `input_tokens` counts all prompt tokens, cache reads and writes included (the
    # OpenAI and genai-prices convention); the cache counts are subsets of it.
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    # USD with 12 decimals. NULL exactly when cost_source is "unpriced": an unknown
    # price is never a silent $0.
    cost = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    cost_source = models.CharField(max_length=16, choices=CostSource.choices)
    # Which price produced `cost`: "genai-prices==0.2.3", "override:<id>", "explicit".
    price_version = models.CharField(max_length=100, blank=True)
    outcome_ref = models.CharField(max_length=200, blank=True)
    end_user = models.CharField(max_length=200, blank=True)
    feature = models.CharField(max_length=100, blank=True)
    tier = models.CharField(max_length=50, blank=True)
    prompt_hash = models.CharField(max_length=128, blank=True)
    cache_hit = models.BooleanField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    # The watermark (billing/invoicing/watermark.py): the transaction that stored the call, and the
    # one that priced it if it was stored unpriced (NULL: priced when stored). A close
    # bills what its snapshot sees of them, by commit order: `received_at` is stamped
    # before the commit, so a clock cannot tell what a close saw. NULL recorded_xid:
    # stored before payback stamped calls (seen by every close since).
    recorded_xid = TransactionIdField(
        null=True, blank=True, editable=False, db_default=current_transaction_id()
    )
    priced_xid = TransactionIdField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            # Billing and usage reads: one customer over a time range.
            models.Index(fields=["customer", "timestamp"], name="event_customer_time"),
            # Cost attribution of an outcome (outcomes issue).
            models.Index(
                fields=["outcome_ref"], name="event_outcome", condition=~Q(outcome_ref="")
            ),
            # The repricing task looks only at unpriced events of one model.
            models.Index(
                fields=["provider", "model", "timestamp"],
                name="event_unpriced",
                condition=Q(cost_source="unpriced"),
            ),
            # The dashboard's caching levers (billing/analytics/selectors/savings.py) read
            # only the calls with a prompt hash, and those served from a cache: the month
            # is not scanned for them, and calls with neither cost these indexes nothing.
            models.Index(
                fields=["timestamp"], name="event_prompt_hash", condition=~Q(prompt_hash="")
            ),
            models.Index(
                fields=["timestamp"],
                name="event_cached",
                condition=Q(cache_hit=True) | Q(cache_read_tokens__gt=0),
            ),
            # Reads over all customers by time (analytics). Events arrive roughly in time
            # order, so a BRIN index serves them at a fraction of a b-tree's write cost.
            BrinIndex(fields=["timestamp"], name="event_time_brin"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(cost__isnull=True, cost_source="unpriced")
                | (Q(cost__isnull=False, cost__gte=0) & ~Q(cost_source="unpriced")),
                name="event_cost_null_iff_unpriced",
            ),
        ]

    def __str__(self) -> str:
        return self.event_id


class EventKey(models.Model):
    """The exactly-once guard of ingest: one row per client event id, written in the same
    transaction as the event. Its fingerprint (a hash of the event as the client sent it)
    tells a harmless retry (same fingerprint) from a conflict (another payload)."""

    key = models.CharField(max_length=200, primary_key=True)
    fingerprint = models.BinaryField(max_length=32)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, db_index=False)
    # Locates the event in a month-partitioned events table.
    event_timestamp = models.DateTimeField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


class ModelPriceOverride(models.Model):
    """An operator's price for a model, valid from `effective_from` until the next
    override of the same provider and model. Beats the genai-prices catalog."""

    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    effective_from = models.DateTimeField()
    # USD per million tokens, at most 6 decimals so that a per-call cost stays exact at
    # the events' 12 decimals. Cache prices default to the input price when empty.
    input_per_mtok = models.DecimalField(max_digits=18, decimal_places=6)
    output_per_mtok = models.DecimalField(max_digits=18, decimal_places=6)
    cache_read_per_mtok = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True
    )
    cache_write_per_mtok = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True
    )
    note = models.TextField(blank=True, help_text="e.g. self-hosted, priced from GPU cost")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model", "effective_from"], name="override_unique_start"
            ),
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0)
                & Q(output_per_mtok__gte=0)
                & (Q(cache_read_per_mtok__isnull=True) | Q(cache_read_per_mtok__gte=0))
                & (Q(cache_write_per_mtok__isnull=True) | Q(cache_write_per_mtok__gte=0)),
                name="override_prices_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} from {self.effective_from:%Y-%m-%d}"
