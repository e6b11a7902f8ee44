"""The invoicing app takes over its models from the billing app, tables and rows as they are.

Until this migration billing was one app; its models' tables (billing_*) keep their names
(each model's Meta.db_table). So the database is not touched: the models enter this app's
state here, billing's migration 0009 removes them from its own, and the content types move
with them (permissions granted on them and audit-log entries keep pointing at the same
rows)."""

import django.db.models.deletion
from django.db import migrations, models

from billing.content_types import content_types_move

MODELS = ["invoice", "invoiceline", "fxrate"]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("billing", "0008_webhook_refusals"),
        ("plans", "0001_initial"),
        ("metering", "0003_watermark"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="InvoiceLine",
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
                        ("position", models.PositiveIntegerField()),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("base_fee", "base fee"),
                                    ("outcome", "succeeded outcomes"),
                                    ("included", "outcomes included free"),
                                    ("seats", "premium seats"),
                                    ("pass_through", "AI usage at cost plus markup"),
                                    ("minimum", "top-up to the minimum spend"),
                                    ("late_usage", "late usage of an earlier period"),
                                    ("credit", "credit for an earlier period"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("description", models.CharField(max_length=300)),
                        ("quantity", models.DecimalField(decimal_places=12, max_digits=30)),
                        ("unit_price", models.DecimalField(decimal_places=12, max_digits=30)),
                        ("amount", models.BigIntegerField()),
                        ("outcome_type", models.CharField(blank=True, max_length=100)),
                        ("feature", models.CharField(blank=True, max_length=100, null=True)),
                        ("stripe_item_id", models.CharField(blank=True, max_length=100)),
                    ],
                    options={
                        "db_table": "billing_invoiceline",
                        "ordering": ["invoice", "position"],
                    },
                ),
                migrations.CreateModel(
                    name="FxRate",
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
                        ("currency", models.CharField(max_length=3)),
                        ("effective_from", models.DateTimeField()),
                        ("usd_per_unit", models.DecimalField(decimal_places=12, max_digits=24)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "billing_fxrate",
                        "ordering": ["currency", "-effective_from"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("currency", "effective_from"), name="fx_rate_once"
                            ),
                            models.CheckConstraint(
                                condition=models.Q(("usd_per_unit__gt", 0)), name="fx_rate_positive"
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Invoice",
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
                        ("period_start", models.DateTimeField()),
                        ("period_end", models.DateTimeField()),
                        ("currency", models.CharField(max_length=3)),
                        ("total", models.BigIntegerField()),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("draft", "Draft"),
                                    ("finalized", "Finalized"),
                                    ("paid", "Paid"),
                                    ("void", "Void"),
                                    ("uncollectible", "Uncollectible"),
                                ],
                                default="draft",
                                max_length=16,
                            ),
                        ),
                        ("closed_at", models.DateTimeField()),
                        ("snapshot", models.TextField(blank=True)),
                        ("stripe_invoice_id", models.CharField(blank=True, max_length=100)),
                        ("hosted_invoice_url", models.URLField(blank=True, max_length=1000)),
                        ("invoice_pdf", models.URLField(blank=True, max_length=1000)),
                        (
                            "push_state",
                            models.CharField(
                                choices=[
                                    ("pending", "pending"),
                                    ("pushing", "pushing"),
                                    ("pushed", "pushed"),
                                    ("failed", "failed"),
                                    ("not_sent", "not sent ($0)"),
                                ],
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("push_step", models.CharField(blank=True, max_length=40)),
                        ("push_attempts", models.PositiveIntegerField(default=0)),
                        ("push_error", models.TextField(blank=True)),
                        ("drift", models.CharField(blank=True, max_length=300)),
                        ("drift_checked_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "customer",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="invoices",
                                to="metering.customer",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_invoice",
                        "ordering": ["-period_start"],
                        "permissions": [
                            ("void_invoice", "Can void invoices"),
                            ("mark_uncollectible_invoice", "Can mark invoices uncollectible"),
                            ("push_invoice", "Can push invoices to Stripe again"),
                        ],
                    },
                ),
                migrations.AddField(
                    model_name="invoice",
                    name="plan_version",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="plans.planversion",
                    ),
                ),
                migrations.AddField(
                    model_name="invoiceline",
                    name="invoice",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lines",
                        to="invoicing.invoice",
                    ),
                ),
                migrations.AddField(
                    model_name="invoiceline",
                    name="source_invoice",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="invoicing.invoice",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="invoice",
                    constraint=models.UniqueConstraint(
                        fields=("customer", "period_start"), name="invoice_once_per_period"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="invoice",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("period_end__gt", models.F("period_start"))),
                        name="invoice_period_order",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="invoiceline",
                    constraint=models.UniqueConstraint(
                        fields=("invoice", "position"), name="invoice_line_position"
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_types_move("billing", "invoicing", MODELS),
            content_types_move("invoicing", "billing", MODELS),
        ),
    ]
