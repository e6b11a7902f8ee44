"""Invoices mirrored to Stripe, and what Stripe tells back (webhooks, drift)."""

from django.apps import AppConfig


class StripeSyncConfig(AppConfig):
    name = "billing.stripe_sync"
    label = "stripe_sync"
    verbose_name = "Stripe"
