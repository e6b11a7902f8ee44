"""A closed period's margin (Reconciliation) and its breakdown by outcome type, feature,
tier and model (ReconciliationCell).

The tables keep the names they had when billing was one app (billing_*): moving a model
between apps moved its state, not its data (migrations/0001_initial.py).
"""

from django.db import models

from billing.invoicing.models import Invoice


class Reconciliation(models.Model):
    """A closed period's margin: what it billed against what its AI cost."""

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, related_name="reconciliation")
    revenue = models.DecimalField(max_digits=30, decimal_places=12)  # invoice currency
    # USD: the priced calls the invoice covers, failed outcomes and unbilled features
    # included: its period's, and those of earlier periods that arrived or were priced
    # since the close before (cost follows revenue).
    inference_cost = models.DecimalField(max_digits=30, decimal_places=12)
    calls = models.BigIntegerField()
    # Input and output tokens of those calls; NULL on a margin row made before payback
    # stored them whose breakdown was not made yet (once made, its cells have them).
    tokens = models.BigIntegerField(null=True, blank=True)
    unpriced_calls = models.BigIntegerField()
    # Only when revenue is in USD (the margin report converts the others with FX rates)
    # and some of the calls are priced; NULL otherwise.
    margin = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    margin_percent = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    # Made after the close (billing/analytics/services.py), with the cells: per
    # outcome type, [succeeded, failed, reversed] in the period; NULL until then.
    outcomes = models.JSONField(default=dict, blank=True)
    breakdown_at = models.DateTimeField(null=True, blank=True)
    # The breakdown's cells summed, written with them (NULL until then): what the margin
    # report by customer reads of a closed period, one row instead of its cells. Revenue
    # and discount in the invoice currency, net of credit notes; USD cost of the calls
    # linked to outcomes. (Cost, calls, tokens and unpriced calls are the fields above:
    # the cells sum to them.)
    breakdown_revenue = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    breakdown_discount = models.DecimalField(
        max_digits=30, decimal_places=12, null=True, blank=True
    )
    outcome_cost = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_reconciliation"
        # Revenue, cost and margin of every customer: the dashboard and its CSV need it.
        permissions = [("view_analytics", "Can view the unit-economics dashboard")]

    def __str__(self) -> str:
        return f"{self.invoice}: margin {self.margin}"


class ReconciliationCell(models.Model):
    """A closed period's calls of one outcome type, feature, tier and model, with the
    share of the invoice's revenue they earned (billing/analytics/selectors/margins.py says
    how it is spread). The cells of a period sum to its invoice: their revenue to the invoice total,
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
    # Promotional credits its revenue is net of (invoice currency): a discount.
    discount = models.DecimalField(max_digits=30, decimal_places=12, default=0)

    class Meta:
        db_table = "billing_reconciliationcell"

    def __str__(self) -> str:
        return f"{self.invoice}: {self.outcome_type}/{self.feature}/{self.model}"
