"""Unit economics: margins, savings, premium break-even and the dashboard."""

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "billing.analytics"
    label = "analytics"
    verbose_name = "Analytics"
