"""The margin row keeps its calls' tokens, as it keeps their count and cost.

The margin report shows a closed period from its margin row until the breakdown after the
close is made; without tokens there it showed 0. Rows with a breakdown get the sum of
their cells' tokens; a row still waiting for its breakdown keeps NULL (the sweep makes the
breakdown, which has them).
"""

from django.db import migrations, models

TOKENS_FROM_CELLS = """
UPDATE billing_reconciliation r SET tokens = c.tokens
FROM (SELECT invoice_id, sum(tokens) AS tokens FROM billing_reconciliationcell GROUP BY 1) c
WHERE c.invoice_id = r.invoice_id AND r.breakdown_at IS NOT NULL
"""


class Migration(migrations.Migration):
    dependencies = [("analytics", "0002_reconciliations_for_old_invoices")]

    operations = [
        migrations.AddField(
            model_name="reconciliation",
            name="tokens",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunSQL(TOKENS_FROM_CELLS, migrations.RunSQL.noop),
    ]
