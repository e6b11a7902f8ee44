"""Invoices keep their close's snapshot (billing/invoicing/watermark.py); the invoices and facts of
an older payback are brought under the new rule, without billing anything twice or
dropping anything.

An older payback marked what a close had billed by a clock: a fact recorded up to an
invoice's `closed_at` was on it (or on an earlier one); a later one was late, for the next
invoice. Here, in one transaction M:
- every existing invoice gets the snapshot "M:M:", which sees every transaction before M
  and not M itself;
- facts about a customer's invoiced periods recorded after its last close (late for its
  next invoice, by the old rule) are stamped M: no old invoice has seen them, every later
  close does, so the next close bills them once;
- every other old fact keeps a NULL stamp, which every snapshot sees: it was billed, or
  belongs to a period not invoiced yet, whose close bills it.
"""

from django.db import migrations, models

BACKFILL = """
CREATE TEMP TABLE payback_last_close ON COMMIT DROP AS
SELECT customer_id, max(closed_at) AS closed_at, max(period_end) AS period_end
FROM billing_invoice GROUP BY customer_id;

UPDATE billing_invoice
SET snapshot = pg_current_xact_id()::text || ':' || pg_current_xact_id()::text || ':';

UPDATE metering_usageevent e SET recorded_xid = pg_current_xact_id()
FROM payback_last_close l
WHERE e.customer_id = l.customer_id AND e.received_at > l.closed_at
  AND e."timestamp" < l.period_end;

-- The stamping trigger keeps the stamps of a row whose status does not change.
ALTER TABLE outcomes_outcome DISABLE TRIGGER outcomes_outcome_stamp;
UPDATE outcomes_outcome o SET succeeded_xid = pg_current_xact_id()
FROM payback_last_close l
WHERE o.customer_id = l.customer_id AND o.status IN ('succeeded', 'reversed')
  AND o.succeeded_recorded_at > l.closed_at AND o.succeeded_at < l.period_end;
UPDATE outcomes_outcome o SET reversed_xid = pg_current_xact_id()
FROM payback_last_close l
WHERE o.customer_id = l.customer_id AND o.status = 'reversed'
  AND o.reversed_at > l.closed_at AND o.succeeded_at < l.period_end;
ALTER TABLE outcomes_outcome ENABLE TRIGGER outcomes_outcome_stamp;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_stripe_links_and_line_sources"),
        ("metering", "0003_watermark"),
        ("outcomes", "0002_watermark"),
    ]

    operations = [
        migrations.AddField(
            model_name="invoice",
            name="snapshot",
            field=models.TextField(blank=True),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
