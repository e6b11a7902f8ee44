"""Billing periods closed into invoices, exactly once; late usage and credits; FX rates."""

from django.apps import AppConfig


class InvoicingConfig(AppConfig):
    name = "billing.invoicing"
    label = "invoicing"
    verbose_name = "Invoicing"
