from django.urls import path

from billing.stripe_sync import api

urlpatterns = [
    path("webhooks/stripe", api.StripeWebhookApi.as_view(), name="webhooks-stripe"),
]
