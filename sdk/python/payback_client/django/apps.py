from django.apps import AppConfig


class PaybackOutboxConfig(AppConfig):
    name = "payback_client.django"
    label = "payback_outbox"
    verbose_name = "payback outbox"
    default_auto_field = "django.db.models.BigAutoField"
