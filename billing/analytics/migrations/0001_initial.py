"""The analytics app takes over its models from the billing app, tables and rows as they are.

Until this migration billing was one app; its models' tables (billing_*) keep their names
(each model's Meta.db_table). So the database is not touched: the models enter this app's
state here, billing's migration 0009 removes them from its own, and the content types move
with them (permissions granted on them and audit-log entries keep pointing at the same
rows)."""

import django.db.models.deletion
from django.db import migrations, models

from billing.content_types import content_types_move

MODELS = ["reconciliation", "reconciliationcell"]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("billing", "0008_webhook_refusals"),
        ("invoicing", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Reconciliation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("revenue", models.DecimalField(decimal_places=12, max_digits=30)),
                        ("inference_cost", models.DecimalField(decimal_places=12, max_digits=30)),
                        ("calls", models.BigIntegerField()),
                        ("unpriced_calls", models.BigIntegerField()),
                        (
                            "margin",
                            models.DecimalField(
                                blank=True, decimal_places=12, max_digits=30, null=True
                            ),
                        ),
                        (
                            "margin_percent",
                            models.DecimalField(
                                blank=True, decimal_places=2, max_digits=9, null=True
                            ),
                        ),
                        ("outcomes", models.JSONField(blank=True, default=dict)),
                        ("breakdown_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "billing_reconciliation",
                        "permissions": [
                            ("view_analytics", "Can view the unit-economics dashboard")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ReconciliationCell",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("outcome_type", models.CharField(blank=True, max_length=100)),
                        ("feature", models.CharField(blank=True, max_length=100)),
                        ("tier", models.CharField(blank=True, max_length=50)),
                        ("provider", models.CharField(blank=True, max_length=100)),
                        ("model", models.CharField(blank=True, max_length=200)),
                        ("calls", models.BigIntegerField()),
                        ("tokens", models.BigIntegerField()),
                        ("cost", models.DecimalField(decimal_places=12, max_digits=30)),
                        ("unpriced_calls", models.BigIntegerField()),
                        ("revenue", models.DecimalField(decimal_places=12, max_digits=30)),
                    ],
                    options={
                        "db_table": "billing_reconciliationcell",
                    },
                ),
                migrations.AddField(
                    model_name="reconciliation",
                    name="invoice",
                    field=models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="reconciliation",
                        to="invoicing.invoice",
                    ),
                ),
                migrations.AddField(
                    model_name="reconciliationcell",
                    name="invoice",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cost_cells",
                        to="invoicing.invoice",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_types_move("billing", "analytics", MODELS),
            content_types_move("analytics", "billing", MODELS),
        ),
    ]
