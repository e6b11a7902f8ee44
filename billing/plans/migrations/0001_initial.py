"""The plans app takes over its models from the billing app, tables and rows as they are.

Until this migration billing was one app; its models' tables (billing_*) keep their names
(each model's Meta.db_table). So the database is not touched: the models enter this app's
state here, billing's migration 0009 removes them from its own, and the content types move
with them (permissions granted on them and audit-log entries keep pointing at the same
rows)."""

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from billing.content_types import content_types_move

MODELS = [
    "plan",
    "planversion",
    "outcomeprice",
    "pricetier",
    "tokenpassthrough",
    "subscription",
    "planchange",
    "seatchange",
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("billing", "0008_webhook_refusals"),
        ("metering", "0003_watermark"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Plan",
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
                        ("code", models.SlugField(max_length=100, unique=True)),
                        ("name", models.CharField(max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "billing_plan",
                        "ordering": ["code"],
                    },
                ),
                migrations.CreateModel(
                    name="PlanVersion",
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
                        ("version", models.PositiveIntegerField()),
                        ("currency", models.CharField(max_length=3)),
                        (
                            "base_fee",
                            models.DecimalField(decimal_places=12, default=0, max_digits=24),
                        ),
                        (
                            "minimum_spend",
                            models.DecimalField(
                                blank=True, decimal_places=12, max_digits=24, null=True
                            ),
                        ),
                        (
                            "premium_seat_fee",
                            models.DecimalField(
                                blank=True, decimal_places=12, max_digits=24, null=True
                            ),
                        ),
                        (
                            "seat_mode",
                            models.CharField(
                                choices=[
                                    ("fixed", "fixed seats (the subscription's premium_seats)"),
                                    (
                                        "active",
                                        "active seats (distinct premium users with calls in the period)",
                                    ),
                                ],
                                default="fixed",
                                max_length=8,
                            ),
                        ),
                        ("reversal_window_days", models.PositiveIntegerField(default=7)),
                        (
                            "collection_method",
                            models.CharField(
                                choices=[
                                    ("charge_automatically", "charge automatically"),
                                    ("send_invoice", "send invoice"),
                                ],
                                default="send_invoice",
                                max_length=24,
                            ),
                        ),
                        ("days_until_due", models.PositiveIntegerField(default=30)),
                        (
                            "included_features",
                            django.contrib.postgres.fields.ArrayField(
                                base_field=models.CharField(max_length=100),
                                blank=True,
                                default=list,
                                size=None,
                            ),
                        ),
                        (
                            "premium_target_margin_percent",
                            models.DecimalField(decimal_places=2, default=0, max_digits=5),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "plan",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="versions",
                                to="plans.plan",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_planversion",
                        "ordering": ["plan", "-version"],
                    },
                ),
                migrations.CreateModel(
                    name="OutcomePrice",
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
                        ("outcome_type", models.CharField(max_length=100)),
                        (
                            "model",
                            models.CharField(
                                choices=[
                                    ("unit", "a price per succeeded outcome"),
                                    (
                                        "percentage",
                                        "a percentage of the outcome's value, with floor and cap",
                                    ),
                                ],
                                default="unit",
                                max_length=12,
                            ),
                        ),
                        (
                            "unit_price",
                            models.DecimalField(
                                blank=True, decimal_places=12, max_digits=24, null=True
                            ),
                        ),
                        (
                            "percentage",
                            models.DecimalField(
                                blank=True, decimal_places=6, max_digits=9, null=True
                            ),
                        ),
                        (
                            "floor",
                            models.DecimalField(
                                blank=True, decimal_places=12, max_digits=24, null=True
                            ),
                        ),
                        (
                            "cap",
                            models.DecimalField(
                                blank=True, decimal_places=12, max_digits=24, null=True
                            ),
                        ),
                        ("included_quantity", models.PositiveIntegerField(default=0)),
                        (
                            "tier_mode",
                            models.CharField(
                                choices=[
                                    ("none", "no tiers"),
                                    (
                                        "graduated",
                                        "graduated: each unit at the price of the tier it falls in",
                                    ),
                                    (
                                        "volume",
                                        "volume: every unit at the price of the tier the total reaches",
                                    ),
                                ],
                                default="none",
                                max_length=10,
                            ),
                        ),
                        ("package_size", models.PositiveIntegerField(blank=True, null=True)),
                        (
                            "plan_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="outcome_prices",
                                to="plans.planversion",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_outcomeprice",
                    },
                ),
                migrations.CreateModel(
                    name="PriceTier",
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
                        ("up_to", models.PositiveIntegerField(blank=True, null=True)),
                        ("unit_price", models.DecimalField(decimal_places=12, max_digits=24)),
                        (
                            "outcome_price",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="tiers",
                                to="plans.outcomeprice",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_pricetier",
                        "ordering": [models.OrderBy(models.F("up_to"), nulls_last=True)],
                    },
                ),
                migrations.CreateModel(
                    name="Subscription",
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
                        ("premium_seats", models.PositiveIntegerField(default=0)),
                        ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("billing_anchor_day", models.PositiveSmallIntegerField(default=1)),
                        (
                            "timezone",
                            models.CharField(
                                default="UTC", help_text="IANA, e.g. Europe/Berlin", max_length=64
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "customer",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="subscription",
                                to="metering.customer",
                            ),
                        ),
                        (
                            "plan",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="subscriptions",
                                to="plans.plan",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_subscription",
                    },
                ),
                migrations.CreateModel(
                    name="SeatChange",
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
                        ("seats", models.PositiveIntegerField()),
                        ("effective_at", models.DateTimeField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "subscription",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="seat_changes",
                                to="plans.subscription",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_seatchange",
                        "ordering": ["subscription", "effective_at"],
                    },
                ),
                migrations.CreateModel(
                    name="PlanChange",
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
                        ("effective_from", models.DateTimeField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "plan",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="plans.plan",
                            ),
                        ),
                        (
                            "subscription",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="plan_changes",
                                to="plans.subscription",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_planchange",
                        "ordering": ["subscription", "effective_from"],
                    },
                ),
                migrations.CreateModel(
                    name="TokenPassThrough",
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
                        ("feature", models.CharField(blank=True, max_length=100)),
                        ("markup", models.DecimalField(decimal_places=6, default=0, max_digits=9)),
                        (
                            "plan_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="pass_throughs",
                                to="plans.planversion",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "billing_tokenpassthrough",
                    },
                ),
                migrations.AddConstraint(
                    model_name="planversion",
                    constraint=models.UniqueConstraint(
                        fields=("plan", "version"), name="plan_version_unique"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="planversion",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("base_fee__gte", 0),
                            models.Q(
                                ("minimum_spend__isnull", True),
                                ("minimum_spend__gte", 0),
                                _connector="OR",
                            ),
                            models.Q(
                                ("premium_seat_fee__isnull", True),
                                ("premium_seat_fee__gte", 0),
                                _connector="OR",
                            ),
                        ),
                        name="plan_version_fees_non_negative",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="outcomeprice",
                    constraint=models.UniqueConstraint(
                        fields=("plan_version", "outcome_type"), name="outcome_price_unique_type"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="subscription",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("billing_anchor_day__gte", 1), ("billing_anchor_day__lte", 31)
                        ),
                        name="subscription_anchor_day_in_month",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="planchange",
                    constraint=models.UniqueConstraint(
                        fields=("subscription", "effective_from"), name="plan_change_once_per_start"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="tokenpassthrough",
                    constraint=models.UniqueConstraint(
                        fields=("plan_version", "feature"), name="pass_through_unique_feature"
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_types_move("billing", "plans", MODELS),
            content_types_move("plans", "billing", MODELS),
        ),
    ]
