from django.urls import path

from billing.invoicing import api

urlpatterns = [
    path(
        "customers/<str:external_id>/usage", api.CustomerUsageApi.as_view(), name="customer-usage"
    ),
    path(
        "customers/<str:external_id>/invoices",
        api.CustomerInvoicesApi.as_view(),
        name="customer-invoices",
    ),
    path("invoices/<int:invoice_id>", api.InvoiceDetailApi.as_view(), name="invoice"),
    path(
        "invoices/<int:invoice_id>/credit-notes",
        api.InvoiceCreditNotesApi.as_view(),
        name="invoice-credit-notes",
    ),
    path("fx-rates", api.FxRatesApi.as_view(), name="fx-rates"),
]
