"""Prepaid credits: grants and the ledger of what they paid (docs/billing.md "Credits")."""

from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "billing.credits"
    label = "credits"
    verbose_name = "Credits"
