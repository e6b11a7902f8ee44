"""The watermark columns of usage events (billing/invoicing/watermark.py): `recorded_xid`, the
transaction that stored the call (a column default), and `priced_xid`, the one that priced
it later (set by the repricing).

Added without rewriting the table: the columns come in empty (NULL: stored before this
version, seen by every close since), and only then does `recorded_xid` get its default,
for the rows stored from now on. Django's own AddField with a volatile default would
rewrite every partition and stamp every old call with this migration's transaction.
Which old calls a close has not seen yet is settled in billing's migration 0006.
"""

from django.db import migrations, models

import metering.fields

TABLE = "metering_usageevent"


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0002_partition_events"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"""
                    ALTER TABLE {TABLE} ADD COLUMN recorded_xid xid8, ADD COLUMN priced_xid xid8;
                    ALTER TABLE {TABLE} ALTER COLUMN recorded_xid SET DEFAULT pg_current_xact_id();
                    """,
                    f"ALTER TABLE {TABLE} DROP COLUMN recorded_xid, DROP COLUMN priced_xid;",
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="usageevent",
                    name="priced_xid",
                    field=metering.fields.TransactionIdField(blank=True, editable=False, null=True),
                ),
                migrations.AddField(
                    model_name="usageevent",
                    name="recorded_xid",
                    field=metering.fields.TransactionIdField(
                        blank=True,
                        db_default=models.Func(
                            function="pg_current_xact_id",
                            output_field=metering.fields.TransactionIdField(),
                        ),
                        editable=False,
                        null=True,
                    ),
                ),
            ],
        ),
    ]
