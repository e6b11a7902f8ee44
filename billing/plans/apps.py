"""Price books, their versions, and the plan each customer is on."""

from django.apps import AppConfig


class PlansConfig(AppConfig):
    name = "billing.plans"
    label = "plans"
    verbose_name = "Plans"
