"""Every delivery is verified or not (0002 decided the old ones)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("stripe_sync", "0002_deliveries_verified_or_not"),
    ]

    operations = [
        migrations.AlterField(
            model_name="stripewebhookdelivery",
            name="verified",
            field=models.BooleanField(default=False),
        ),
    ]
