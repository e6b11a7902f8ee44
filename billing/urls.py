from django.urls import path

from billing import api

urlpatterns = [
    path("customers/<str:external_id>", api.CustomerDetailApi.as_view(), name="customer"),
    path(
        "customers/<str:external_id>/usage", api.CustomerUsageApi.as_view(), name="customer-usage"
    ),
    path(
        "customers/<str:external_id>/invoices",
        api.CustomerInvoicesApi.as_view(),
        name="customer-invoices",
    ),
    path("invoices/<int:invoice_id>", api.InvoiceDetailApi.as_view(), name="invoice"),
    path("fx-rates", api.FxRatesApi.as_view(), name="fx-rates"),
    path("plans", api.PlanListApi.as_view(), name="plans"),
    path("plans/<str:code>", api.PlanDetailApi.as_view(), name="plan"),
    path("plans/<str:code>/versions", api.PlanVersionsApi.as_view(), name="plan-versions"),
    path("analytics/margins", api.MarginsApi.as_view(), name="analytics-margins"),
    path("analytics/premium", api.PremiumBreakEvenApi.as_view(), name="analytics-premium"),
    path("analytics/savings", api.SavingsApi.as_view(), name="analytics-savings"),
    path("webhooks/stripe", api.StripeWebhookApi.as_view(), name="webhooks-stripe"),
    path(
        "outcomes/<str:external_id>/reverse",
        api.OutcomeReverseApi.as_view(),
        name="outcome-reverse",
    ),
]
