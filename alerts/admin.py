from auditlog.registry import auditlog
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from alerts.models import Alert, AlertDelivery, AlertRule, WebhookEndpoint
from common.admin import FactsAdmin


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "scope",
        "threshold_percent",
        "threshold_amount",
        "within_days",
        "enabled",
    )
    list_filter = ("kind", "enabled")
    list_editable = ("enabled",)


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    fields = ("endpoint", "state", "attempts", "last_error", "delivered_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(FactsAdmin):
    """What fired: written by the evaluation, once per rule, subject and month."""

    list_display = ("created_at", "rule", "subject", "period_start", "message")
    list_filter = ("rule", "period_start")
    search_fields = ("subject", "message")
    inlines = [AlertDeliveryInline]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """URLs reaching loopback, private, link-local or metadata addresses are refused on
    save (WebhookEndpoint.clean) and again at each send."""

    list_display = ("url", "enabled", "created_at")
    readonly_fields = ("secret",)
    fields = ("url", "enabled", "secret")
    # A URL typed without a scheme is https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


# Who changed the rules and endpoints (the secret is never written to the log).
auditlog.register(AlertRule)
auditlog.register(WebhookEndpoint, exclude_fields=["secret"])
