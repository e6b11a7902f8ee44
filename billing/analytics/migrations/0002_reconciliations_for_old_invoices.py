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

CALLS_OF_THE_PERIOD = """
SELECT coalesce(sum(cost), 0), count(*), count(*) FILTER (WHERE cost IS NULL)
FROM metering_usageevent
WHERE customer_id = %s AND "timestamp" >= %s AND "timestamp" < %s
"""


def write_missing_rows(apps: Any, schema_editor: Any) -> None:
    invoice_model = apps.get_model("invoicing", "Invoice")
    reconciliation = apps.get_model("analytics", "Reconciliation")
    missing = invoice_model.objects.filter(reconciliation__isnull=True).order_by("pk")
    with schema_editor.connection.cursor() as cursor:
        for invoice in missing.iterator():
            cursor.execute(
                CALLS_OF_THE_PERIOD,
                [invoice.customer_id, invoice.period_start, invoice.period_end],
            )
            cost, calls, unpriced = cursor.fetchone()
            revenue = from_minor_units(invoice.total, invoice.currency)
            # As margin_of: comparable in USD only, unknown when every call is unpriced.
            known = invoice.currency == "USD" and not (calls > 0 and unpriced >= calls)
            margin, percent = margin_of_revenue(revenue, Decimal(cost) if known else None)
            reconciliation.objects.create(
                invoice=invoice,
                revenue=revenue,
                inference_cost=cost,
                calls=calls,
                unpriced_calls=unpriced,
                margin=margin,
                margin_percent=percent,
                outcomes={},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("metering", "0003_watermark"),
    ]

    operations = [
        migrations.RunPython(write_missing_rows, migrations.RunPython.noop),
    ]
