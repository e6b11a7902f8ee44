"""Real-time authorization: spend limits and reservations against what a customer has
available (docs/billing.md "Authorizing spend")."""

from django.apps import AppConfig


class LimitsConfig(AppConfig):
    name = "billing.limits"
    label = "limits"
    verbose_name = "Spend limits"
