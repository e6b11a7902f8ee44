"""A delivery is verified or not, never "not checked yet".

Deliveries stored by paybacks from before verify-first (billing migration 0008) have
`verified` NULL. Those that carried an event were verified when it was processed; the
others were refused after storing. This says so in the data, so that no code needs a
third case; 0003 makes the column NOT NULL (in its own transaction: PostgreSQL refuses
an ALTER TABLE after updates whose foreign-key checks are still pending)."""

from typing import Any

from django.db import migrations

REFUSAL = "stored before payback verified first; not verified"


def decide(apps: Any, schema_editor: Any) -> None:
    delivery = apps.get_model("stripe_sync", "StripeWebhookDelivery")
    unchecked = delivery.objects.filter(verified__isnull=True)
    unchecked.filter(event__isnull=False).update(verified=True)
    unchecked.filter(event__isnull=True).update(verified=False, refusal=REFUSAL)


class Migration(migrations.Migration):
    dependencies = [
        ("stripe_sync", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(decide, migrations.RunPython.noop),
    ]
