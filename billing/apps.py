"""The app that billing was before it became a package of apps (plans, invoicing,
stripe_sync, analytics). It keeps only its migrations: they made the billing_* tables
that those apps' models now own, and databases of earlier paybacks have run them."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing (history)"
