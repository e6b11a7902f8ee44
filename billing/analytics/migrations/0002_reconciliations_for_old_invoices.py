"""Every invoice has its margin row.

Closes have written a Reconciliation with each invoice since paybacks had margins;
invoices closed before have none, and code had to handle them apart (the margin report's
"no row" case; the sweep that makes missing breakdowns chose them every run and could never
finish them, having no row to mark done). This writes their row as a close would have:
revenue the invoice total, cost and calls those of the customer's calls in the period (no
watermark then: the period's own calls), the margin where the invoice is in USD and some
calls are priced (or there are none). The breakdown is left to the sweep (breakdown_at NULL), which now finds
a row to finish.
"""

from decimal import Decimal
from typing import Any

from django.db import migrations

from billing.money import from_minor_units, margin_of_revenue

# Each invoice without a margin row, with the cost and counts of its period's calls.
CALLS_OF_THE_PERIODS = """
SELECT i.id, i.total, i.currency, coalesce(sum(e.cost), 0), count(e.id),
       count(e.id) FILTER (WHERE e.id IS NOT NULL AND e.cost IS NULL)
FROM billing_invoice i
LEFT JOIN billing_reconciliation r ON r.invoice_id = i.id
LEFT JOIN metering_usageevent e ON e.customer_id = i.customer_id
     AND e."timestamp" >= i.period_start AND e."timestamp" < i.period_end
WHERE r.id IS NULL
GROUP BY i.id
"""


def write_missing_rows(apps: Any, schema_editor: Any) -> None:
    reconciliation = apps.get_model("analytics", "Reconciliation")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(CALLS_OF_THE_PERIODS)
        periods = cursor.fetchall()
    rows = []
    for invoice_id, total, currency, cost, calls, unpriced in periods:
        revenue = from_minor_units(total, currency)
        # As margin_of: comparable in USD only, unknown when every call is unpriced.
        known = currency == "USD" and not (calls > 0 and unpriced >= calls)
        margin, percent = margin_of_revenue(revenue, Decimal(cost) if known else None)
        rows.append(
            reconciliation(
                invoice_id=invoice_id,
                revenue=revenue,
                inference_cost=cost,
                calls=calls,
                unpriced_calls=unpriced,
                margin=margin,
                margin_percent=percent,
                outcomes={},
            )
        )
    reconciliation.objects.bulk_create(rows, batch_size=5000)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("metering", "0003_watermark"),
    ]

    operations = [
        migrations.RunPython(write_missing_rows, migrations.RunPython.noop),
    ]
