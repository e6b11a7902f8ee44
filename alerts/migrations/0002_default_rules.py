from django.db import migrations

# The rules a new installation starts with; operators change or disable them in the admin.
DEFAULT_RULES = [
    ("Negative margin per customer", "margin_below", "customer", 0),
    ("Negative margin per outcome type", "margin_below", "outcome_type", 0),
    ("Cost per success up 25 % on last month", "cost_per_success_up", "outcome_type", 25),
    ("Unpriced calls", "unpriced_calls", "customer", 0),
    ("Premium tier below break-even", "premium_below_break_even", "customer", 0),
]


def create_default_rules(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    for name, kind, scope, threshold in DEFAULT_RULES:
        AlertRule.objects.get_or_create(
            name=name, defaults={"kind": kind, "scope": scope, "threshold_percent": threshold}
        )


def remove_default_rules(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(name__in=[rule[0] for rule in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(create_default_rules, remove_default_rules)]
