"""billing's models now live in the apps billing/plans, invoicing, stripe_sync and
analytics (their 0001_initial took them over, tables and rows as they are): this removes
them from billing's state only. The database is not touched."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_webhook_refusals"),
        ("plans", "0001_initial"),
        ("invoicing", "0001_initial"),
        ("stripe_sync", "0001_initial"),
        ("analytics", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name=name)
                for name in (
                    "ReconciliationCell",
                    "Reconciliation",
                    "StripeWebhookDelivery",
                    "StripeEvent",
                    "StripeCustomer",
                    "InvoiceLine",
                    "Invoice",
                    "FxRate",
                    "PlanChange",
                    "SeatChange",
                    "Subscription",
                    "PriceTier",
                    "OutcomePrice",
                    "TokenPassThrough",
                    "PlanVersion",
                    "Plan",
                )
            ],
            database_operations=[],
        ),
    ]
