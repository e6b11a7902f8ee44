"""The stripe_sync app takes over its models from the billing app, tables and rows as they are.

Until this migration billing was one app; its models' tables (billing_*) keep their names
(each model's Meta.db_table). So the database is not touched: the models enter this app's
state here, billing's migration 0009 removes them from its own, and the content types move
with them (permissions granted on them and audit-log entries keep pointing at the same
rows)."""

import django.db.models.deletion
from django.db import migrations, models

from billing.content_types import content_types_move

MODELS = ["stripecustomer", "stripewebhookdelivery", "stripeevent"]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("billing", "0008_webhook_refusals"),
        ("invoicing", "0001_initial"),
        ("metering", "0003_watermark"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StripeEvent",
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
                        ("stripe_id", models.CharField(max_length=100, unique=True)),
                        ("type", models.CharField(max_length=100)),
                        ("payload", models.JSONField()),
                        ("received_at", models.DateTimeField(auto_now_add=True)),
                        ("processed_at", models.DateTimeField(blank=True, null=True)),
                        ("outcome", models.CharField(blank=True, max_length=300)),
                    ],
                    options={
                        "db_table": "billing_stripeevent",
                        "ordering": ["-received_at"],
                    },
                ),
                migrations.CreateModel(
                    name="StripeCustomer",
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
                        ("stripe_id", models.CharField(max_length=100, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "customer",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="metering.customer",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_stripecustomer",
                    },
                ),
                migrations.CreateModel(
                    name="StripeWebhookDelivery",
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
                        ("body", models.BinaryField()),
                        ("size", models.PositiveIntegerField(default=0)),
                        ("signature", models.CharField(blank=True, max_length=1000)),
                        ("remote_address", models.CharField(blank=True, max_length=64)),
                        ("received_at", models.DateTimeField(auto_now_add=True)),
                        ("verified", models.BooleanField(null=True)),
                        ("refusal", models.CharField(blank=True, max_length=300)),
                        (
                            "event",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="deliveries",
                                to="stripe_sync.stripeevent",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_stripewebhookdelivery",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_types_move("billing", "stripe_sync", MODELS),
            content_types_move("stripe_sync", "billing", MODELS),
        ),
    ]
