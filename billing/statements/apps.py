"""What the customer sees of an invoice: its statement (docs/billing.md "Statements")."""

from django.apps import AppConfig


class StatementsConfig(AppConfig):
    name = "billing.statements"
    label = "statements"
    verbose_name = "Statements"
