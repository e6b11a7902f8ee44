"""The breakdown's cells summed onto its reconciliation row (the margin report by customer
reads one row per closed period instead of its cells), filled in here for the
breakdowns made before; tokens too where an older close left them empty."""

from django.db import migrations, models

BACKFILL_SQL = """
UPDATE billing_reconciliation r
SET breakdown_revenue = c.revenue, breakdown_discount = c.discount,
    outcome_cost = c.outcome_cost, tokens = c.tokens
FROM (
    SELECT invoice_id, sum(revenue) AS revenue, sum(discount) AS discount,
           coalesce(sum(cost) FILTER (WHERE outcome_type <> ''), 0) AS outcome_cost,
           sum(tokens) AS tokens
    FROM billing_reconciliationcell GROUP BY invoice_id
) AS c
WHERE c.invoice_id = r.invoice_id AND r.breakdown_at IS NOT NULL
"""
# A breakdown without a cell (a period with no calls and nothing billed) sums to zero.
EMPTY_SQL = """
UPDATE billing_reconciliation
SET breakdown_revenue = 0, breakdown_discount = 0, outcome_cost = 0, tokens = coalesce(tokens, 0)
WHERE breakdown_at IS NOT NULL AND breakdown_revenue IS NULL
"""


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0004_cell_discount"),
    ]

    operations = [
        migrations.AddField(
            model_name="reconciliation",
            name="breakdown_discount",
            field=models.DecimalField(blank=True, decimal_places=12, max_digits=30, null=True),
        ),
        migrations.AddField(
            model_name="reconciliation",
            name="breakdown_revenue",
            field=models.DecimalField(blank=True, decimal_places=12, max_digits=30, null=True),
        ),
        migrations.AddField(
            model_name="reconciliation",
            name="outcome_cost",
            field=models.DecimalField(blank=True, decimal_places=12, max_digits=30, null=True),
        ),
        migrations.RunSQL(BACKFILL_SQL, migrations.RunSQL.noop),
        migrations.RunSQL(EMPTY_SQL, migrations.RunSQL.noop),
    ]
