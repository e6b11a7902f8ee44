"""The watermark columns of outcomes (billing/invoicing/watermark.py): the transactions that made an
outcome succeeded and reversed, stamped by a trigger on every insert and update, whatever
writes the row (the API, the admin, a shell, a test), so that no path can forget them. A
row whose status does not change keeps its stamps, whatever the update says of them.

Existing rows keep NULL (moved there before this version: seen by every close since);
which of them a close has not seen yet is settled in billing's migration 0006.
"""

from django.db import migrations

import metering.fields

STAMP = """
CREATE FUNCTION outcomes_outcome_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.succeeded_xid := OLD.succeeded_xid;
        NEW.reversed_xid := OLD.reversed_xid;
    ELSE
        NEW.succeeded_xid := NULL;
        NEW.reversed_xid := NULL;
    END IF;
    IF NEW.status IN ('succeeded', 'reversed')
       AND (TG_OP = 'INSERT' OR OLD.status NOT IN ('succeeded', 'reversed')) THEN
        NEW.succeeded_xid := pg_current_xact_id();
    END IF;
    IF NEW.status = 'reversed' AND (TG_OP = 'INSERT' OR OLD.status <> 'reversed') THEN
        NEW.reversed_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER outcomes_outcome_stamp BEFORE INSERT OR UPDATE ON outcomes_outcome
    FOR EACH ROW EXECUTE FUNCTION outcomes_outcome_stamp();
"""
UNSTAMP = """
DROP TRIGGER outcomes_outcome_stamp ON outcomes_outcome;
DROP FUNCTION outcomes_outcome_stamp();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0003_watermark"),
        ("outcomes", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="outcome",
            name="reversed_xid",
            field=metering.fields.TransactionIdField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="outcome",
            name="succeeded_xid",
            field=metering.fields.TransactionIdField(blank=True, editable=False, null=True),
        ),
        migrations.RunSQL(STAMP, UNSTAMP),
    ]
